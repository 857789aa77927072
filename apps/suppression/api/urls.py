from django.urls import path

from . import views

app_name = "suppression"

urlpatterns = [
    path("", views.SuppressionListCreateView.as_view(), name="list"),
    path("bulk-add", views.BulkAddView.as_view(), name="bulk-add"),
    path("bulk-remove", views.BulkRemoveView.as_view(), name="bulk-remove"),
    path("check", views.CheckView.as_view(), name="check"),
    path("history", views.HistoryView.as_view(), name="history"),
]
