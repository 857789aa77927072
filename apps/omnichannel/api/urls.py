from django.urls import path

from . import views

urlpatterns = [
    path("ingest", views.IngestView.as_view(), name="omnichannel-ingest"),
    path("sources", views.SourcesView.as_view(), name="omnichannel-sources"),
    path("contacts/<str:user_id>", views.ContactView.as_view(), name="omnichannel-contact"),
    path("activate", views.ActivateView.as_view(), name="omnichannel-activate"),
    path("activations/<int:activation_id>", views.ActivationDetailView.as_view(), name="omnichannel-activation"),
    path("in-app/<str:user_id>", views.InAppMessagesView.as_view(), name="omnichannel-in-app"),
    path("web/<str:user_id>", views.WebOffersView.as_view(), name="omnichannel-web"),
    path("in-store/<str:store_id>", views.InStoreOffersView.as_view(), name="omnichannel-in-store"),
    path("email/analytics", views.EmailAnalyticsListView.as_view(), name="omnichannel-email-analytics"),
    path("email/analytics/<int:activation_id>", views.EmailAnalyticsDetailView.as_view(),
         name="omnichannel-email-analytics-detail"),
]
