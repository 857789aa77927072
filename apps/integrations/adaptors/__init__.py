"""Vendor adaptors, looked up by connection kind (``base.adaptor_for``): importing this package
registers every one of them."""
from . import asana, dam, jira, powerbi  # noqa: F401 - registration
from .base import Adaptor, ConnectionConfig, ConnectionProblem, adaptor_for, plain_words

__all__ = ["Adaptor", "ConnectionConfig", "ConnectionProblem", "adaptor_for", "plain_words"]
