from django.apps import AppConfig


class DspConfig(AppConfig):
    name = "apps.dsp"
    label = "dsp"
    verbose_name = "DSP exchange"
