from django.urls import path

from . import views

app_name = "catalog"

urlpatterns = [
    path("items/<str:item_id>", views.CatalogItemView.as_view(), name="item"),
    path("imports", views.CatalogImportCreateView.as_view(), name="imports"),
    path("imports/<int:import_id>", views.CatalogImportView.as_view(), name="import"),
    path("imports/<int:import_id>/refused.csv", views.CatalogImportRefusedView.as_view(), name="import-refused"),
]
