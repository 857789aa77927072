from config import env

# Per-token rate limits (apps.core.throttling): "<requests>/<s|m|h|d>" or "off". Unauthenticated
# callers (schema, docs) are counted per client address; provider webhooks have their own budget.
API_RATE_LIMITS = {
    "user": env.env_rate("API_RATE_LIMIT_USER", "3000/m"),
    "anon": env.env_rate("API_RATE_LIMIT_ANON", "120/m"),
    "webhook": env.env_rate("API_RATE_LIMIT_WEBHOOK", "6000/m"),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "apps.core.openapi.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    # The API speaks JSON only: no form or multipart bodies (a view that must, like Twilio's
    # form-encoded callback, sets its own parser_classes), so the schema advertises only JSON.
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.throttling.TokenRateThrottle", "apps.core.throttling.AnonRateThrottle"],
    # How many proxies in front of the web process append to X-Forwarded-For (HAProxy: 1). 0 = use
    # the socket address; a client-supplied header is never trusted beyond this many hops.
    "NUM_PROXIES": env.env_int("API_TRUSTED_PROXIES", 0),
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Campaign Express API",
    "DESCRIPTION": (
        "Real-time offer personalisation: campaigns and approvals, loyalty, omnichannel activation, "
        "suppression and analytics. Authenticate with `Authorization: Token <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/v1",
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN, works offline. (Redoc is not
    # offered: its free build loads its logo from the vendor's CDN.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Links from what a POST creates to the operations that take its id (apps.core.openapi.add_links).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "apps.core.openapi.add_links"],
    # One schema name per shared choice set (fields named differently reuse the same enum).
    "ENUM_NAME_OVERRIDES": {
        "LoyaltyTierEnum": "apps.loyalty.models.Tier",
        "CampaignChannelEnum": "apps.core.channels.CampaignChannel",
        "CampaignStatusEnum": "apps.campaigns.models.CampaignStatus",
        "MessageChannelEnum": "apps.core.channels.DeliveryChannel",
        "ActivationStatusEnum": "apps.omnichannel.models.ActivationStatus",
        "SuppressionChannelEnum": "apps.core.channels.SuppressionChannel",
        "SendStatusEnum": "apps.omnichannel.models.SendStatus",
        "DecisionStatusEnum": "apps.rl.models.DecisionStatus",
        "DecisionSourceEnum": "apps.rl.models.DecisionSource",
        "RewardSourceEnum": "apps.rl.models.RewardSource",
        "CatalogImportFormatEnum": "apps.recommendations.models.CatalogImport.Format",
    },
}
