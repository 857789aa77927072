from django.apps import AppConfig


class OmnichannelConfig(AppConfig):
    name = "apps.omnichannel"
    label = "omnichannel"
    verbose_name = "Omnichannel"
