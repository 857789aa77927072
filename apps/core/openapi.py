"""The OpenAPI schema says what the API answers, for every operation, without each view repeating it.

``ApiAutoSchema`` (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``) adds to what a view declares:

* the error envelope ``Error`` (``{"error", "detail", "field"?, "fields"?}``, as ``apps.core.api``
  answers) as the body of every 4xx a view documents without one;
* 401 on every operation that needs a token, 403 where a role is required;
* 429 with ``Retry-After`` wherever a rate limit applies (``apps.core.throttling``);
* 400 where the operation takes a body or query parameters, or a free-text path parameter (an id with
  spaces or control characters), 404 where it has path parameters (an id that does not parse or does
  not exist) and, on paginated lists, 404 ``Invalid page``;
* 503 with ``Retry-After`` on every operation: each one reads Postgres (the token, at least), and a
  store outage answers 503 ``unavailable`` (``apps.core.outages``);
* for ``apps.core.fields.StrictDecimalField``, the exact ``pattern`` the field validates with (its
  minimum and maximum are in the pattern: JSON Schema's ``minimum`` does not apply to strings);
* ``minItems``/``maxItems`` of a list that may not be empty or is bounded (also a nested ``many=True``).

Views keep documenting what only they know (403 for a self-approval, 409 for the state machine).
"""
from __future__ import annotations

import uritemplate
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated

from apps.core import fields as strict_fields
from apps.core.outages import RETRY_AFTER_SECONDS


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Machine-readable code: invalid, not_found, throttled, conflict, ...")
    detail = serializers.CharField(help_text="What was wrong, for a person; names the field or parameter")
    field = serializers.CharField(required=False, help_text="The field, parameter or header at fault, when one is")
    fields = serializers.DictField(required=False, help_text="Every invalid field with its messages (validation errors)")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


UNAUTHENTICATED = "No token, or one that is not valid (`not_authenticated`, `authentication_failed`)"
FORBIDDEN = "The token's user lacks the role this operation requires (`permission_denied`)"
THROTTLED = "Rate limit of this token (or address) reached (`throttled`); retry after `Retry-After` seconds"
BAD_INPUT = "Bad input: `{error, detail, field}` or `{error, detail, fields}` naming the field or parameter"
NOT_FOUND = "No such resource (`not_found`)"
INVALID_PAGE = "Invalid page: `page` is not a positive integer or is past the last page"
UNAVAILABLE = (f"A store (Postgres, Redis or ClickHouse) is unavailable (`unavailable`); retry after `Retry-After` "
               f"seconds ({RETRY_AFTER_SECONDS})")


class ApiAutoSchema(AutoSchema):
    def _permissions(self) -> list:
        try:
            return list(self.view.get_permissions())
        except Exception:  # noqa: BLE001 - any view's code may fail without a request; assume a token is needed
            return [IsAuthenticated()]

    def _needs_token(self) -> bool:
        if not getattr(self.view, "authentication_classes", None):
            return False
        return not all(isinstance(p, AllowAny) for p in self._permissions())

    def _needs_role(self) -> bool:
        return any(type(p) not in (AllowAny, IsAuthenticated) for p in self._permissions())

    def _throttled(self) -> bool:
        try:
            return bool(self.view.get_throttles())
        except Exception:  # noqa: BLE001 - schema generation must not fail on a view that needs a request
            return False

    def _has_filters(self) -> bool:
        """Declared query parameters (an OpenApiParameter in the query, or a FilterParams serializer)."""
        for parameter in self.get_override_parameters():
            if not isinstance(parameter, OpenApiParameter):
                return True
            if parameter.location == OpenApiParameter.QUERY and not parameter.response:
                return True
        return False

    def _has_page_size(self) -> bool:
        paginator = self._get_paginator()
        return bool(paginator and getattr(paginator, "page_size_query_param", None))

    def _free_text_path(self) -> bool:
        """A path parameter that is any string (``<str:user_id>``): the view may refuse its value (400)."""
        variables = uritemplate.variables(self.path)
        if not variables:
            return False
        return any(p["schema"].get("type") == "string" and "pattern" not in p["schema"]
                   for p in self._resolve_path_parameters(variables))

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, strict_fields.StrictDecimalField) and schema.get("type") == "string":
            schema["pattern"] = field.pattern
            limits = [f"at least {field.min_value}" if field.min_value is not None else "",
                      f"at most {field.max_value}" if field.max_value is not None else ""]
            limits = " and ".join(limit for limit in limits if limit)
            note = f"Decimal as a string, at most {field.decimal_places} decimals" + (f", {limits}" if limits else "")
            schema["description"] = f"{schema['description']} ({note})" if schema.get("description") else note
        if isinstance(field, (serializers.ListField, serializers.ListSerializer)) and schema.get("type") == "array":
            # drf-spectacular maps a ListField's min/max_length but not allow_empty, nor a nested many=True's.
            if getattr(field, "allow_empty", True) is False:
                schema["minItems"] = max(schema.get("minItems", 0), 1)
            if getattr(field, "min_length", None):
                schema["minItems"] = max(schema.get("minItems", 0), field.min_length)
            if getattr(field, "max_length", None):
                schema["maxItems"] = field.max_length
        return schema

    def _takes_body(self) -> bool:
        return self.method in ("PUT", "PATCH", "POST") and self.get_request_serializer() is not None

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        parameters.append(OpenApiParameter(
            "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429, 503] if self._throttled() else [503],
            description="Seconds until the rate limit window ends (429) or until a retry may succeed (503)"))
        return parameters

    def _get_response_bodies(self, direction="response"):
        # Not get_response_serializers(): @extend_schema(responses=...) overrides that one.
        responses = super()._get_response_bodies(direction)

        def error(code: str, description: str) -> dict:
            return self._get_response_for_code(_error(description), code, direction=direction)

        for code, response in list(responses.items()):
            if code[0] in "45" and "content" not in response:
                responses[code] = error(code, response.get("description") or "Error")

        def add(code: int, description: str) -> None:
            if str(code) not in responses:
                responses[str(code)] = error(str(code), description)

        declared = self.get_response_serializers()
        paginated = self.method == "GET" and self._get_paginator() is not None and self._is_list_view(declared)
        if self._takes_body() or self._has_filters() or self._free_text_path() or (paginated and self._has_page_size()):
            add(400, BAD_INPUT)
        if self._needs_token():
            add(401, UNAUTHENTICATED)
            if self._needs_role():
                add(403, FORBIDDEN)
        if paginated:
            if "404" in responses:
                description = responses["404"].get("description") or NOT_FOUND
                if INVALID_PAGE not in description:
                    responses["404"] = error("404", f"{description}. Or: {INVALID_PAGE}")
            else:
                add(404, INVALID_PAGE)
        if uritemplate.variables(self.path):
            add(404, NOT_FOUND)
        if self._throttled():
            add(429, THROTTLED)
        add(503, UNAVAILABLE)
        return dict(sorted(responses.items()))


def add_links(result, generator, request, public):
    """drf-spectacular postprocessing hook: OpenAPI links from what a POST creates to what reads it.

    * POST on a collection (``/v1/campaigns/``) → every operation under ``/v1/campaigns/{id}...``, with the
      new ``id`` from the response body and the collection's own path parameters passed on
      (``/v1/campaigns/{campaign_pk}/offers/`` → ``.../offers/{id}/`` keeps ``campaign_pk``);
    * a POST whose answer names an id that another path takes (``activation_id``, ``user_id``; a bare
      ``id`` is ambiguous and a nullable one may be absent) → those operations.

    Generated clients and Schemathesis' stateful phase follow them (create, then read, edit, transition).
    """
    paths = result.get("paths", {})
    schemas = result.get("components", {}).get("schemas", {})
    operations = [(path, method, op) for path, item in paths.items() for method, op in item.items()
                  if method in ("get", "put", "patch", "post", "delete")]

    def body_properties(response: dict) -> set[str]:
        """The response body's properties that are always there (not nullable)."""
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        ref = schema.get("$ref", "")
        properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
        return {name for name, prop in properties.items() if not prop.get("nullable")}

    for path, method, op in operations:
        if method != "post":
            continue
        own_variables = set(uritemplate.variables(path))
        for code in ("201", "200"):
            response = op.get("responses", {}).get(code)
            if not response:
                continue
            properties = body_properties(response)
            links = {}
            for target_path, _method, target in operations:
                if target is op or "operationId" not in target:
                    continue
                variables = list(uritemplate.variables(target_path))
                if not variables:
                    continue
                parameters = {}
                if target_path.startswith(path) and path.endswith("/") and "id" in properties:
                    new = [v for v in variables if v not in own_variables]
                    if len(new) != 1 or not target_path[len(path):].startswith("{" + new[0] + "}"):
                        continue
                    parameters[new[0]] = "$response.body#/id"
                    parameters.update({v: f"$request.path.{v}" for v in variables if v in own_variables})
                elif not own_variables and all(v in properties and v not in ("id", "pk") for v in variables):
                    parameters = {v: f"$response.body#/{v}" for v in variables}
                else:
                    continue
                links[target["operationId"]] = {"operationId": target["operationId"], "parameters": parameters}
            if links:
                response["links"] = dict(sorted(links.items()))
    return result
