"""Asana (developers.asana.com; model: Asana/python-asana ``tasks_api.py``).

``Authorization: Bearer <PAT>``; every body is wrapped in ``data``; errors are
``{"errors": [{"message": ...}]}``; 429 carries ``Retry-After`` seconds (150/min per token on free).

Options: ``workspace`` (gid), ``project`` (gid), ``assignee`` (gid, optional), ``status_source``
(``completed`` — default —, ``section``, or ``custom_field:<name or gid>``), ``status_map``
(``{"completed": "approve", "Rejected": "reject"}``), ``user_map`` (``{"ann@acme.com": "ann"}``).
Credentials: ``token``.

Where the status is read (``GET /tasks/{gid}`` with ``opt_fields``, Asana returns only those):

* ``completed``: ``completed`` → ``"completed"`` / ``"open"``; the actor is ``completed_by``.
* ``section``: the section of the task's membership in ``options.project``
  (``memberships[].section.{gid,name}``); ``status_map`` may name the section or its gid.
* ``custom_field:<name or gid>``: that enum custom field's chosen option (``custom_fields[].enum_value
  .{gid,name}``); ``status_map`` may name the option or its gid. No option chosen → ``""``.

For a section or field change the actor is whoever made the last status story
(``section_changed``, ``enum_custom_field_changed``, ``marked_complete``) in ``/tasks/{gid}/stories``.
"""
from __future__ import annotations

from datetime import datetime

from .base import ConnectionProblem, register
from .tasking import ApprovalItem, ExternalRef, ExternalState, TaskAdaptor

STATUS_STORIES = {"marked_complete", "section_changed", "enum_custom_field_changed", "added_to_project"}
TASK_FIELDS = ("completed,completed_at,completed_by.email,memberships.project.gid,memberships.section.gid,"
               "memberships.section.name,custom_fields.gid,custom_fields.name,custom_fields.resource_subtype,"
               "custom_fields.enum_value.gid,custom_fields.enum_value.name,custom_fields.display_value")


def _gids(obj: dict) -> tuple[str, ...]:
    return (str(obj["gid"]),) if obj.get("gid") else ()


def _data(response) -> dict:
    """The ``data`` object of an answer ({} when it is not one)."""
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def _data_list(response) -> list:
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, list) else []


@register
class AsanaAdaptor(TaskAdaptor):
    kind = "asana"
    vendor = "Asana"

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "Authorization": f"Bearer {self.config.credential('token')}"}

    def test(self) -> str:
        me = _data(self.quick("GET", "/users/me", params={"opt_fields": "name,email"}))
        project = self.config.option("project")
        if not project:
            raise ConnectionProblem("The connection has no project option: set options.project to the project's gid.")
        found = _data(self.quick("GET", f"/projects/{project}", params={"opt_fields": "name"},
                                 what=f"project {project}"))
        return f"Connected to Asana as {me.get('name') or me.get('email') or 'the token owner'}; project {found.get('name')!r} found."

    def create_task(self, item: ApprovalItem) -> ExternalRef:
        project = self.config.option("project")
        workspace = self.config.option("workspace")
        if not project and not workspace:
            raise ConnectionProblem("The connection needs options.project (or options.workspace).")
        notes = "\n".join([*item.lines(), f"Open in Campaign Express: {item.admin_url}", "", f"[{item.marker}]"])
        data: dict = {"name": item.title, "notes": notes}
        if workspace:
            data["workspace"] = str(workspace)
        if project:
            data["projects"] = [str(project)]
        if self.config.option("assignee"):
            data["assignee"] = str(self.config.option("assignee"))
        task = _data(self.client.post("/tasks", json={"data": data}, params={"opt_fields": "gid,permalink_url"}))
        return ExternalRef(id=str(task["gid"]), key="", url=task.get("permalink_url") or "")

    def find_task(self, *, marker: str, since: datetime) -> ExternalRef | None:
        project = self.config.option("project")
        if not project:
            return None
        params = {"project": str(project), "modified_since": since.isoformat(), "limit": 100,
                  "opt_fields": "gid,notes,permalink_url"}
        path = "/tasks"
        for _ in range(20):  # pages of 100; a retry only looks at tasks modified since the first attempt
            body = self.client.get(path, params=params).json()
            for task in body.get("data", []):
                if f"[{marker}]" in (task.get("notes") or ""):
                    return ExternalRef(id=str(task["gid"]), key="", url=task.get("permalink_url") or "")
            offset = (body.get("next_page") or {}).get("offset")
            if not offset:
                return None
            params = {**params, "offset": offset}
        return None

    def _status_of(self, task: dict) -> tuple[str, tuple[str, ...]]:
        """(status name, other keys it may be mapped by: the section's or enum option's gid)."""
        source = str(self.config.option("status_source", "completed"))
        if source == "section":
            project = str(self.config.option("project", ""))
            for membership in task.get("memberships") or []:
                if not project or str((membership.get("project") or {}).get("gid")) == project:
                    section = membership.get("section") or {}
                    return str(section.get("name") or ""), _gids(section)
            return "", ()
        if source.startswith("custom_field:"):
            wanted = source.split(":", 1)[1].strip()
            for custom in task.get("custom_fields") or []:
                if wanted in (custom.get("name"), str(custom.get("gid"))):
                    option = custom.get("enum_value") or {}
                    if option:
                        return str(option.get("name") or ""), _gids(option)
                    return str(custom.get("display_value") or ""), ()
            return "", ()
        return ("completed" if task.get("completed") else "open"), ()

    def fetch_state(self, ref: ExternalRef) -> ExternalState:
        task = _data(self.client.get(f"/tasks/{ref.id}", params={"opt_fields": TASK_FIELDS}))
        status, aliases = self._status_of(task)
        stories = _data_list(self.client.get(f"/tasks/{ref.id}/stories", params={
            "opt_fields": "resource_subtype,text,created_by.email,created_by.gid,created_at"}))
        actor = comment = ""
        for story in stories:
            who = (story.get("created_by") or {})
            if story.get("resource_subtype") == "comment_added":
                comment = story.get("text") or comment
            elif story.get("resource_subtype") in STATUS_STORIES:
                actor = who.get("email") or who.get("gid") or actor
        if status == "completed":
            actor = ((task.get("completed_by") or {}).get("email")) or actor
        return ExternalState(status=status, actor=actor, last_comment=comment, aliases=aliases)

    def push_decision(self, ref: ExternalRef, *, decision: str, note: str) -> str:
        self.client.post(f"/tasks/{ref.id}/stories", json={"data": {"text": note}})
        self.client.put(f"/tasks/{ref.id}", json={"data": {"completed": True}})
        return "task completed with a comment"
