"""Page-number pagination that means what the schema says.

DRF's defaults quietly accept what the schema calls invalid: ``page=last``, ``page=٣`` (any Unicode
digit), and a ``page_size`` that is not a number or is above the maximum (ignored or cut down). Here
a ``page`` that is not a plain positive number, or past the end, is 404 ``Invalid page``, and a bad
``page_size`` is a 400 naming it; the schema documents both (``apps.core.openapi``).
"""
from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination as DRFPageNumberPagination

from apps.core.exceptions import ServiceError


def _plain_positive_int(value: str) -> int | None:
    value = value.strip() if isinstance(value, str) else ""
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        return None
    return int(value)


class PageNumberPagination(DRFPageNumberPagination):
    """``?page=N`` (1-based); subclasses may allow ``?page_size=`` up to ``max_page_size``."""

    last_page_strings = ()

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        number = _plain_positive_int(raw)
        if number is None:
            raise NotFound(self.invalid_page_message.format(page_number=raw, message="That page number is not a positive integer."))
        return number

    def get_page_size(self, request):
        if not self.page_size_query_param or self.page_size_query_param not in request.query_params:
            return self.page_size
        raw = request.query_params[self.page_size_query_param]
        size = _plain_positive_int(raw)
        if size is None or (self.max_page_size and size > self.max_page_size):
            raise ServiceError(
                f"{self.page_size_query_param} must be an integer from 1 to {self.max_page_size}, got {raw!r}.",
                field=self.page_size_query_param,
            )
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                if self.max_page_size:
                    parameter["schema"]["maximum"] = self.max_page_size
        return parameters
