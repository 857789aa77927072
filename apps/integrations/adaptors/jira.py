"""Jira Cloud REST v3 (developer.atlassian.com/cloud/jira/platform/rest/v3).

``Authorization: Basic base64(email:api_token)``; the description is Atlassian Document Format (v3
refuses a plain string); 400s are ``{"errorMessages": [...], "errors": {field: message}}``; 429 and
some 503s carry ``Retry-After`` and/or ``X-RateLimit-Reset`` (ISO 8601, ``yyyy-MM-ddTHH:mmZ``) with
``RateLimit-Reason``, and ``X-RateLimit-Remaining`` counts down: ``apps.core.outbound`` honours all
three. Transition ids differ per workflow, so they are looked up by name.

Options: ``project_key`` (``OPS``), ``issue_type`` (``Task``), ``status_map``
(``{"Approved": "approve", "Rejected": "reject"}``: status names), ``user_map`` (email or account id
→ platform username), ``transitions`` (``{"approve": "Approve", "reject": "Reject",
"request_changes": "Needs changes"}``: transition or target status names; default ``Done`` for all).
Credentials: ``email``, ``api_token``.
"""
from __future__ import annotations

from datetime import datetime

import httpx

from .base import ConnectionProblem, register
from .tasking import ApprovalItem, ExternalRef, ExternalState, TaskAdaptor


def adf_document(paragraphs: list[str], *, link: tuple[str, str] | None = None) -> dict:
    """An ADF ``doc``: one paragraph per line, then a paragraph with a link mark."""
    content: list[dict] = [{"type": "paragraph", "content": [{"type": "text", "text": text}]} for text in paragraphs]
    if link is not None:
        label, href = link
        content.append({"type": "paragraph", "content": [
            {"type": "text", "text": label, "marks": [{"type": "link", "attrs": {"href": href}}]}]})
    return {"type": "doc", "version": 1, "content": content}


def adf_text(node) -> str:
    """The plain text of an ADF node (a comment body), paragraphs on their own lines."""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return node.get("text", "")
    parts = [adf_text(child) for child in node.get("content") or []]
    joiner = "\n" if node.get("type") == "doc" else ""
    return joiner.join(p for p in parts if p).strip()


@register
class JiraAdaptor(TaskAdaptor):
    kind = "jira"
    vendor = "Jira"

    def auth(self):
        return httpx.BasicAuth(self.config.credential("email"), self.config.credential("api_token"))

    def _project(self) -> str:
        key = self.config.option("project_key")
        if not key:
            raise ConnectionProblem("The connection has no project_key option (e.g. OPS).")
        return str(key)

    def test(self) -> str:
        me = self.quick("GET", "/rest/api/3/myself").json()
        key = self._project()
        project = self.quick("GET", f"/rest/api/3/project/{key}", what=f"project {key}").json()
        return f"Connected to Jira as {me.get('displayName') or me.get('emailAddress')}; project {project.get('name')!r} ({key}) found."

    def create_task(self, item: ApprovalItem) -> ExternalRef:
        body = {"fields": {
            "project": {"key": self._project()},
            "summary": item.title[:250],
            "issuetype": {"name": str(self.config.option("issue_type", "Task"))},
            "labels": [item.marker],
            "description": adf_document(item.lines(), link=("Open in Campaign Express", item.admin_url)),
        }}
        created = self.client.post("/rest/api/3/issue", json=body).json()
        return self._ref(created["id"], created["key"])

    def _ref(self, issue_id, key) -> ExternalRef:
        return ExternalRef(id=str(issue_id), key=str(key), url=f"{self.config.base_url.rstrip('/')}/browse/{key}")

    def find_task(self, *, marker: str, since: datetime) -> ExternalRef | None:
        jql = f'project = "{self._project()}" AND labels = "{marker}" ORDER BY created ASC'
        found = self.client.get("/rest/api/3/search/jql", params={"jql": jql, "fields": "status", "maxResults": 1}).json()
        issues = found.get("issues") or []
        return self._ref(issues[0]["id"], issues[0]["key"]) if issues else None

    def fetch_state(self, ref: ExternalRef) -> ExternalState:
        issue = self.client.get(f"/rest/api/3/issue/{ref.key or ref.id}",
                                params={"fields": "status,comment", "expand": "changelog"}).json()
        fields = issue.get("fields") or {}
        status = ((fields.get("status") or {}).get("name")) or ""
        actor = ""
        for history in (issue.get("changelog") or {}).get("histories") or []:
            if any(item.get("field") == "status" for item in history.get("items") or []):
                author = history.get("author") or {}
                actor = author.get("emailAddress") or author.get("accountId") or actor
        comments = (fields.get("comment") or {}).get("comments") or []
        last = adf_text(comments[-1].get("body")) if comments else ""
        return ExternalState(status=status, actor=actor, last_comment=last)

    def push_decision(self, ref: ExternalRef, *, decision: str, note: str) -> str:
        key = ref.key or ref.id
        self.client.post(f"/rest/api/3/issue/{key}/comment", json={"body": adf_document([note])})
        wanted = str((self.config.option("transitions") or {}).get(decision) or "Done")
        transitions = self.client.get(f"/rest/api/3/issue/{key}/transitions").json().get("transitions") or []
        for transition in transitions:
            names = {str(transition.get("name", "")).lower(), str((transition.get("to") or {}).get("name", "")).lower()}
            if wanted.lower() in names:
                self.client.post(f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": transition["id"]}})
                return f"transitioned to {wanted}"
        available = ", ".join(sorted(str(t.get("name")) for t in transitions)) or "none"
        raise ConnectionProblem(f"Jira offers no transition named {wanted!r} for {key} (available: {available}).")
