"""Mounted at ``/v1/campaigns/`` by ``config/urls.py``."""
from rest_framework.routers import SimpleRouter

from .views import CampaignViewSet, OfferViewSet

router = SimpleRouter()
router.register(r"(?P<campaign_pk>\d+)/offers", OfferViewSet, basename="campaign-offer")
router.register(r"", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
