from django.urls import path

from .views import CampaignReportXlsxView

urlpatterns: list = [
    path("campaigns/<int:campaign_id>.xlsx", CampaignReportXlsxView.as_view(), name="report-campaign-xlsx"),
]
