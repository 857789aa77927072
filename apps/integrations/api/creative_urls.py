from django.urls import path

from .creatives import CreativeImportView, CreativeSearchView

urlpatterns: list = [
    path("search", CreativeSearchView.as_view(), name="creative-search"),
    path("import", CreativeImportView.as_view(), name="creative-import"),
]
