from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import auth as core_auth
from apps.core import views as core_views

# Campaign Express branding on every admin page (templates/admin/base_site.html uses it too).
admin.site.site_header = admin.site.site_title = "Campaign Express"
admin.site.index_title = "Back office"

urlpatterns = [
    path("live", core_views.live, name="live"),
    path("ready", core_views.ready, name="ready"),
    path("metrics", core_views.metrics, name="metrics"),
    path("admin/two-factor/", admin.site.admin_view(core_auth.two_factor_setup), name="two-factor-setup"),
    path("admin/", admin.site.urls),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("v1/campaigns/", include("apps.campaigns.api.urls")),
    path("v1/loyalty/", include("apps.loyalty.api.urls")),
    path("v1/suppression/", include("apps.suppression.api.urls")),
    path("v1/channels/", include("apps.omnichannel.api.urls")),
    path("v1/webhooks/", include("apps.omnichannel.api.webhook_urls")),
    path("v1/creatives/", include("apps.integrations.api.creative_urls")),
    path("v1/reports/", include("apps.integrations.api.urls")),  # campaigns/{id}.xlsx
    path("v1/reports/", include("apps.analytics.api.urls")),
    path("", include("apps.rl.api.urls")),  # /v1/decisions, /v1/decisions/{id}[/reward]
    path("v1/catalog/", include("apps.recommendations.api.catalog_urls")),
    path("v1/recommendations/", include("apps.recommendations.api.urls")),
    path("", core_views.home, name="home"),
]

# Under /v1/ these answer the API's JSON error envelope; elsewhere Django's pages (apps.core.views).
handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
