"""The task-management side shared by Asana and Jira: what we send, what we get back."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from .base import Adaptor

#: decisions a connection's ``status_map`` may name
DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class ApprovalItem:
    """One submission for approval, as the task/issue describes it."""

    campaign_id: int
    review_round: int
    name: str
    advertiser: str
    budget: str
    currency: str
    channels: tuple[str, ...]
    required_approvals: int
    rule: str
    admin_url: str
    marker: str

    @property
    def title(self) -> str:
        return f"Approve campaign: {self.name} ({self.advertiser})"

    def lines(self) -> list[str]:
        return [
            f"Campaign: {self.name} (#{self.campaign_id}), advertiser {self.advertiser}",
            f"Budget: {self.budget} {self.currency}",
            f"Channels: {', '.join(self.channels) or 'none'}",
            f"Required approvals: {self.required_approvals} ({self.rule})",
            f"Review round: {self.review_round}",
        ]


@dataclass(frozen=True)
class ExternalRef:
    id: str
    key: str
    url: str


@dataclass(frozen=True)
class ExternalState:
    """Where the item stands: ``status`` is what the connection's ``status_map`` is keyed by; ``actor``
    who made it so (email or account id, matched against ``user_map``); ``last_comment`` for a reject;
    ``aliases`` other keys ``status_map`` may use for the same status (an Asana section's gid)."""

    status: str
    actor: str = ""
    last_comment: str = ""
    aliases: tuple[str, ...] = ()

    def decision(self, status_map: dict) -> str | None:
        """What ``status_map`` maps this status to (by name, then by alias), or None."""
        for key in (self.status, *self.aliases):
            if key and key in status_map:
                return status_map[key]
        return None


class TaskAdaptor(Adaptor):
    @abc.abstractmethod
    def create_task(self, item: ApprovalItem) -> ExternalRef:
        ...

    @abc.abstractmethod
    def find_task(self, *, marker: str, since: datetime) -> ExternalRef | None:
        """The item an earlier attempt may have made (carrying ``marker``), or None."""

    @abc.abstractmethod
    def fetch_state(self, ref: ExternalRef) -> ExternalState:
        ...

    @abc.abstractmethod
    def push_decision(self, ref: ExternalRef, *, decision: str, note: str) -> str:
        """Complete or transition the item after a decision made in the platform; says what was done."""
