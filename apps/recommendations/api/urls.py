from django.urls import path

from . import views

app_name = "recommendations"

urlpatterns = [
    path("<str:user_id>", views.RecommendationsView.as_view(), name="for-user"),
]
