from django.urls import path

from apps.loyalty.api import views

app_name = "loyalty"

urlpatterns = [
    path("earn", views.EarnView.as_view(), name="earn"),
    path("redeem", views.RedeemView.as_view(), name="redeem"),
    path("reward-signal", views.RewardSignalView.as_view(), name="reward-signal"),
    path("balance/<str:user_id>", views.BalanceView.as_view(), name="balance"),
    path("ledger/<str:user_id>", views.LedgerView.as_view(), name="ledger"),
]
