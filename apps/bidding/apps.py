from django.apps import AppConfig


class BiddingConfig(AppConfig):
    name = "apps.bidding"
    label = "bidding"
