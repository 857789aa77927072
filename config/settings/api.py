REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
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
    "COMPONENT_SPLIT_REQUEST": True,
    # One schema name per shared choice set (fields named differently reuse the same enum).
    "ENUM_NAME_OVERRIDES": {
        "LoyaltyTierEnum": "apps.loyalty.models.Tier",
        "CampaignChannelEnum": "apps.campaigns.models.Channel",
        "CampaignStatusEnum": "apps.campaigns.models.CampaignStatus",
        "MessageChannelEnum": "apps.omnichannel.models.Channel",
        "ActivationStatusEnum": "apps.omnichannel.models.ActivationStatus",
        "SuppressionChannelEnum": "apps.suppression.models.Channel",
        "SendStatusEnum": "apps.omnichannel.models.SendStatus",
    },
}
