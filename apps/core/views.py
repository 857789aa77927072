from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core import health, metrics as metrics_registry


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
