"""Query-string filters of list endpoints: declared once, validated, documented.

A view declares its filters as a serializer and reads them through :func:`filter_params`; an
unknown choice, a malformed date or a number out of range is a 400 naming the parameter instead of
a silently empty (or silently unfiltered) list. Pass the same class to ``extend_schema(parameters=
[...])`` and drf-spectacular documents each field as a query parameter, with its enum, format and
bounds::

    class CampaignFilters(FilterParams):
        status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(parameters=[CampaignFilters])
    def list(self, request):
        filters = filter_params(request, CampaignFilters)   # {"status": "live"}; absent ones left out
        ...

Every field must be optional (``required=False``). A parameter given twice counts its last value.
``page`` and ``page_size`` belong to the paginator (``apps.core.pagination``), not here.
"""
from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from apps.core.exceptions import ServiceError


class FilterParams(serializers.Serializer):
    """Base class of a list endpoint's query parameters (fields only; no create/update)."""

    def create(self, validated_data):  # pragma: no cover - filters are never saved
        raise NotImplementedError

    def update(self, instance, validated_data):  # pragma: no cover
        raise NotImplementedError


def filter_params(request: Request, params_class: type[FilterParams]) -> dict[str, Any]:
    """The validated filters of ``request`` (only those given), or a 400 naming the first bad one::

        {"error": "invalid", "detail": "status: \\"AAA\\" is not a valid choice.", "field": "status"}
    """
    # A plain dict (last value of each), not the QueryDict: DRF treats an empty value in form-style
    # input as "not given", so ``?status=`` would pass although "" is no status.
    params = params_class(data={name: request.query_params.getlist(name)[-1] for name in request.query_params})
    if params.is_valid():
        return dict(params.validated_data)
    name, messages = next(iter(params.errors.items()))
    message = messages[0] if isinstance(messages, list) and messages else messages
    raise ServiceError(f"{name}: {message}", field=name, code="invalid")
