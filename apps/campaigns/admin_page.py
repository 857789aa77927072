"""What the top of a campaign's admin page says, and its one readable history.

The header answers a marketer's first questions without scrolling: the status, the last decision
with its reason and who made it, the approval rule that applies and the votes so far. The history
merges transitions, votes and field edits (``selectors.campaign_history_entries``) into sentences:
"approver · Rejected (in review → rejected): Off brand", "marketer · Campaign changed: Budget
5000.00 → 6000.00". Field names become their labels, so nobody needs the model's vocabulary.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import FieldDoesNotExist

from . import selectors
from .models import Campaign, CampaignStatus, EditSource, Offer

HISTORY_LIMIT = 200

TRANSITION_LABELS = {
    "create": "Created", "submit": "Submitted for approval", "approve": "Approved", "reject": "Rejected",
    "request_changes": "Sent back for changes", "revise": "Back to draft", "schedule": "Scheduled",
    "go_live": "Went live", "pause": "Paused", "resume": "Resumed", "complete": "Completed", "archive": "Archived",
    "vote_approve": "Voted to approve", "vote_reject": "Voted to reject", "votes_voided": "Votes voided",
}
EDIT_LABELS = {"campaign_update": "Campaign changed", "offer_create": "Offer added", "offer_update": "Offer changed",
               "offer_delete": "Offer removed"}
DECISION_WORDS = {"approve": "Approved", "reject": "Rejected", "request_changes": "Sent back for changes"}


def field_label(name: str, *, offer: bool = False) -> str:
    """``max_bid_cpm`` → "Max bid (CPM)": the label a marketer sees on the form."""
    model = Offer if offer else Campaign
    try:
        label = str(getattr(model._meta.get_field(name), "verbose_name", name.replace("_", " ")))
    except FieldDoesNotExist:
        label = name.replace("_", " ")
    return label[:1].upper() + label[1:]


_CAMPAIGN_FIELDS = {f.name for f in Campaign._meta.get_fields()}
_OFFER_FIELDS = {f.name for f in Offer._meta.get_fields()}
_FIELD_NAMES = sorted({n for n in _CAMPAIGN_FIELDS | _OFFER_FIELDS if "_" in n}, key=len, reverse=True)
_FIELD_RE = re.compile(r"\b(" + "|".join(map(re.escape, _FIELD_NAMES)) + r")\b")
_LEADING_RE = re.compile(r"^([a-z_]+)\b")
_MONEY_RE = re.compile(r"\b(budget|max_bid_cpm)\b(.*?)\b(at least |below what is already spent \()(\d+(?:\.\d+)?)")


def plain_message(message: str, *, currency: str | None = None) -> str:
    """A service's refusal in the admin's words: the code names of fields become their labels
    ("end_at must be after start_at." → "“Ends” must be after “Starts”."), and amounts of money
    carry the currency when it is known ("“Budget” must be at least 0.01 EUR.")."""
    if currency:
        message = _MONEY_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4)} {currency}", message)

    def label(match: re.Match) -> str:
        name = match.group(1)
        return f"“{field_label(name, offer=name in _OFFER_FIELDS and name not in _CAMPAIGN_FIELDS)}”"

    message = _FIELD_RE.sub(label, message)
    leading = _LEADING_RE.match(message)
    if leading and leading.group(1) in (_CAMPAIGN_FIELDS | _OFFER_FIELDS):
        message = label(leading) + message[leading.end():]
    return message


def _status(value: str | None) -> str:
    if not value:
        return ""
    try:
        return CampaignStatus(value).label.lower()
    except ValueError:
        return value


def _value(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", value):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return value
    text = str(value)
    return text if len(text) <= 120 else f"{text[:117]}…"


@dataclass
class HistoryLine:
    kind: str
    at: datetime
    actor: str
    what: str
    detail: str = ""
    changes: list[tuple[str, str, str]] = field(default_factory=list)


def history_lines(*, campaign_id: int, limit: int = HISTORY_LIMIT) -> list[HistoryLine]:
    """The campaign's transitions, votes and edits, newest first, as sentences."""
    lines = []
    for row in selectors.campaign_history_entries(campaign_id=campaign_id)[:limit]:
        actor = row["h_actor"] or "system"
        if row["h_kind"] == "transition":
            action = row["h_action"]
            what = TRANSITION_LABELS.get(action, action.replace("_", " ").capitalize())
            if row["h_from_status"] != row["h_to_status"]:
                what += f" ({_status(row['h_from_status'])} → {_status(row['h_to_status'])})"
            lines.append(HistoryLine("transition", row["h_created_at"], actor, what, row["h_reason"] or ""))
            continue
        offer = row["h_offer_id"] is not None
        what = EDIT_LABELS.get(row["h_action"], row["h_action"])
        if offer:
            what += f" #{row['h_offer_id']}"
        source = EditSource(row["h_source"]).label if row["h_source"] in EditSource.values else row["h_source"]
        changes = [(field_label(name, offer=offer), _value(change.get("old")), _value(change.get("new")))
                   for name, change in sorted((row["h_changes"] or {}).items())]
        lines.append(HistoryLine("edit", row["h_created_at"], actor, what, f"via {source}", changes))
    return lines


def campaign_header(*, campaign: Campaign) -> dict:
    """Status, the last decision (who, when, why), the rule and the votes of the current round."""
    decision = selectors.campaign_latest_decision(campaign_id=campaign.pk)
    votes = list(selectors.campaign_round_votes(campaign=campaign))
    reason = ""
    if decision is not None:
        reason = decision.reason
        if decision.action == "reject":
            reason = reason or selectors.campaign_last_rejection_reason(campaign_id=campaign.pk)
    return {
        "decision": decision,
        "decision_word": DECISION_WORDS.get(decision.action, "") if decision else "",
        "decision_reason": reason,
        # A decision belongs to the front while it is the news: until the campaign is submitted again.
        "decision_current": bool(decision and (campaign.submitted_at is None
                                               or decision.created_at >= campaign.submitted_at)),
        "rule": campaign.approval_rule,
        "votes": votes,
        "approvals": sum(1 for v in votes if v.decision == "approve"),
    }
