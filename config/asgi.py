"""ASGI entry for the web process: Django (admin, REST API, webhooks, docs), Django Channels
websockets, and — so one dev process serves everything — the bid app mounted at ``/v1/bid``.
Production runs the bid app on its own workers (``apps.bidding.asgi:app``)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

# /static/ (admin CSS, vendored Chart.js) served by this process too, as runserver does; without it
# the admin under uvicorn has no styles. A CDN / reverse proxy in front may serve STATIC_ROOT instead.
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

django_asgi = ASGIStaticFilesHandler(django_asgi)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.routing import bid_paths, websocket_urlpatterns  # noqa: E402


async def http_router(scope, receive, send):
    bid_app = bid_paths(scope["path"])
    if bid_app is not None:
        await bid_app(scope, receive, send)
    else:
        await django_asgi(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_router,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
