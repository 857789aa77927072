from django.urls import path

from apps.rl.api import views

app_name = "rl"

urlpatterns = [
    path("v1/decisions", views.DecisionView.as_view(), name="decide"),
    path("v1/decisions/<str:decision_id>", views.DecisionDetailView.as_view(), name="detail"),
    path("v1/decisions/<str:decision_id>/reward", views.RewardView.as_view(), name="reward"),
]
