import pytest
from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path):
    """Every endpoint documents itself: the schema validates and the generator has nothing to warn about."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out), "--validate", "--fail-on-warn")
    text = out.read_text()
    for path in ("/v1/campaigns/", "/v1/loyalty/earn", "/v1/channels/activate", "/v1/suppression/",
                 "/v1/reports/campaigns/{campaign_id}", "/v1/webhooks/sendgrid"):
        assert f"  {path}:" in text, path


@pytest.mark.django_db
def test_docs_page_is_served(client):
    response = client.get("/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "patch", "post", "delete"):
                yield f"{method.upper()} {path}", operation


def test_every_operation_documents_401_429_503_and_the_error_envelope():
    """A generated client needs every status the API can answer: each operation takes a token (or, for
    provider webhooks, a signature) and is rate-limited, and each reads Postgres, so 401, 429 and 503 are
    documented everywhere; every error status carries the {error, detail} envelope."""
    schema = _schema()
    missing = {}
    for name, operation in _operations(schema):
        responses = operation["responses"]
        lacking = [code for code in ("401", "429", "503") if code not in responses]
        for code, response in responses.items():
            if code[0] in "45":
                body = response.get("content", {}).get("application/json", {}).get("schema", {})
                if body.get("$ref", "").rsplit("/", 1)[-1] not in ("Error", "ErrorOut"):
                    lacking.append(f"{code} without the error envelope")
        for code in ("429", "503"):
            if code in responses and "Retry-After" not in responses[code].get("headers", {}):
                lacking.append(f"{code} without Retry-After")
        if lacking:
            missing[name] = lacking
    assert missing == {}


def test_no_operation_advertises_a_non_json_body():
    """The API parses JSON only (apps.core.parsers): a form or multipart body in the schema is a promise the
    server breaks. The one form-encoded endpoint (Twilio's callback) documents no body."""
    schema = _schema()
    other = {name: sorted(operation["requestBody"]["content"]) for name, operation in _operations(schema)
             if "requestBody" in operation and set(operation["requestBody"]["content"]) != {"application/json"}}
    assert other == {}


def test_schema_states_the_enforced_limits():
    """Spot checks of limits the serializers enforce and the schema must show (they come from the same
    field objects, so these fail if a field loses its limit, not if the schema drifts)."""
    import re

    components = _schema()["components"]["schemas"]
    campaign = components["CampaignRequest"]["properties"]
    assert re.fullmatch(campaign["budget"]["pattern"], "0.01") and not re.fullmatch(campaign["budget"]["pattern"], "0.00")
    assert not re.fullmatch(campaign["budget"]["pattern"], "-5")
    assert campaign["channels"]["minItems"] == 1
    countries = components["TargetingRequest"]["properties"]["countries"]["items"]
    assert {"US", "USA", "GBR"} <= set(components[countries["$ref"].rsplit("/", 1)[-1]]["enum"])
    offer = components["OfferRequest"]["properties"]
    assert not re.fullmatch(offer["max_bid_cpm"]["pattern"], "0")
    assert (offer["width"]["minimum"], offer["width"]["maximum"]) == (1, 10_000)
    earn = components["EarnRequestRequest"]["properties"]["amount_cents"]
    assert earn["minimum"] == 1 and earn["maximum"] > 1
    assert components["BulkAddRequestDocRequest"]["properties"]["entries"]["maxItems"] == 10_000
    assert components["Campaign"]["properties"]["submitted_at"]["nullable"] is True


def test_creating_operations_link_to_what_reads_them():
    """Stateful clients (and Schemathesis) follow links: a created campaign to its reads and transitions."""
    schema = _schema()
    created = schema["paths"]["/v1/campaigns/"]["post"]["responses"]["201"]["links"]
    assert created["campaigns_retrieve"] == {"operationId": "campaigns_retrieve", "parameters": {"id": "$response.body#/id"}}
    assert created["campaigns_offers_create"]["parameters"] == {"campaign_pk": "$response.body#/id"}
    offer = schema["paths"]["/v1/campaigns/{campaign_pk}/offers/"]["post"]["responses"]["201"]["links"]
    assert offer["campaigns_offers_retrieve"]["parameters"] == {
        "id": "$response.body#/id", "campaign_pk": "$request.path.campaign_pk"}
    activated = schema["paths"]["/v1/channels/activate"]["post"]["responses"]["201"]["links"]
    assert activated["channels_activations_retrieve"]["parameters"] == {"activation_id": "$response.body#/activation_id"}
