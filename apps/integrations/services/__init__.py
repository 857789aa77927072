"""Writes of the integrations slice: connections and their test, approval tasks in Asana/Jira."""
from .approvals import (
    AttemptInProgress,
    SyncSummary,
    approval_decision_push,
    approval_status_sync,
    approval_sync_one,
    approval_task_create,
    campaign_lifecycle_notify,
)
from .bi import PushSummary, powerbi_connection_ids, powerbi_push, powerbi_resume
from .connections import TestResult, connection_config, connection_test
from .creatives import DAM_KINDS, ValiditySummary, creative_import, creative_search, creative_validity_sync

__all__ = [
    "DAM_KINDS", "AttemptInProgress", "PushSummary", "ValiditySummary", "creative_import", "creative_search",
    "creative_validity_sync", "SyncSummary", "powerbi_connection_ids", "powerbi_push", "powerbi_resume", "TestResult", "approval_decision_push", "approval_status_sync",
    "approval_sync_one", "approval_task_create", "campaign_lifecycle_notify", "connection_config", "connection_test",
]
