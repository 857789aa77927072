from django.urls import path

from .views import CampaignReportSlashView, CampaignReportView

urlpatterns: list = [
    path("campaigns/<int:campaign_id>", CampaignReportView.as_view(), name="report-campaign"),
    path("campaigns/<int:campaign_id>/", CampaignReportSlashView.as_view()),
]
