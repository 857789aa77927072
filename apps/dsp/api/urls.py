from django.urls import path

from . import views

app_name = "dsp"

urlpatterns = [
    path("win", views.WinView.as_view(), name="win"),
    path("status", views.StatusView.as_view(), name="status"),
    path("spend", views.SpendView.as_view(), name="spend"),
]
