from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core import health
from apps.core import metrics as metrics_registry


def live(request):
    """The process is up."""
    return JsonResponse({"status": "live"})


def ready(request):
    """Every store answers; otherwise 503 naming the ones that do not."""
    results = health.run_checks()
    failing = sorted(name for name, result in results.items() if result != "ok")
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing, "checks": results}, status=503)
    return JsonResponse({"status": "ready", "checks": results})


def metrics(request):
    return HttpResponse(metrics_registry.render(), content_type=CONTENT_TYPE_LATEST)


def home(request):
    return redirect("/admin/")


# --- error pages ---------------------------------------------------------------------------------
# Django answers URLs no view matches, and exceptions no view handled, with these (config/urls.py
# handler400/403/404/500; DEBUG off). Under /v1/ a client gets the API's JSON envelope
# (apps.core.api), never an HTML page; elsewhere (admin, docs) Django's own pages.
API_PREFIX = "/v1/"


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")


def _api_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def bad_request(request, exception=None):
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        detail = (f"This form sent more than {limit:,} fields, more than one request may carry. To act on many "
                  "rows, tick the box at the top of the list and choose “Select all”, then run the action; "
                  "for a list of entries, use the import or the bulk API.")
        if _is_api(request):
            return _api_error(400, "too_many_fields", detail)
        return render(request, "admin/too_many_fields.html", {"title": "Too many fields at once", "detail": detail},
                      status=400)
    if _is_api(request):
        return _api_error(400, "bad_request", "The request could not be understood.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return _api_error(403, "permission_denied", "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return _api_error(404, "not_found", f"No API endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    # django.request has already logged the exception with its traceback (log_response).
    if _is_api(request):
        return _api_error(500, "server_error", "Internal error; it has been logged.")
    return defaults.server_error(request)
