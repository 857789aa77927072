"""Local servers on 127.0.0.1 speaking Asana's and Jira Cloud's documented formats
(/work/shared/notes/integrations-wire-formats.md §4): they check the auth header and the body the
way the vendor does, keep the items they made, and answer with the vendor's success and error shapes.
Tests change an item's state as a person in that tool would (``move``, ``complete``)."""
from __future__ import annotations

import base64
import datetime
import itertools
import re
import threading
import time
from urllib.parse import unquote

from tests.support.http_server import LocalHTTPServer, Recorded

ASANA_TOKEN = "1/1200000000000000:asana-pat-SECRET"
JIRA_EMAIL, JIRA_TOKEN = "bot@acme.example", "jira-api-token-SECRET"


def asana_select(obj, opt_fields: str | None):
    """What Asana returns for ``opt_fields``: only the named (dotted) fields, plus ``gid`` and
    ``resource_type``; an object named without subfields comes back compact (its gid)."""
    if opt_fields is None:
        return obj
    paths = [p.split(".") for p in opt_fields.split(",") if p]
    return _select(obj, paths)


def _select(obj, paths):
    if isinstance(obj, list):
        return [_select(item, paths) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: obj[k] for k in ("gid", "resource_type") if k in obj}
    for head in {p[0] for p in paths}:
        if head not in obj:
            continue
        rest = [p[1:] for p in paths if p[0] == head and len(p) > 1]
        value = obj[head]
        if rest:
            out[head] = _select(value, rest)
        elif isinstance(value, dict):
            out[head] = {k: value[k] for k in ("gid", "resource_type") if k in value}
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[head] = [{k: v[k] for k in ("gid", "resource_type") if k in v} for v in value]
        else:
            out[head] = value
    return out


class AsanaServer(LocalHTTPServer):
    """``/api/1.0``; bodies wrapped in ``data``; ``{"errors": [{"message": ...}]}``; ``opt_fields``
    honoured (only what is asked for comes back). The project has sections and an enum custom field
    "Approval" (options Pending / Approved / Rejected) on every task."""

    SECTIONS = {"To review": "1400000000000001", "Approved": "1400000000000002", "Rejected": "1400000000000003",
                "Parked": "1400000000000004"}
    FIELD_GID = "1500000000000001"
    OPTIONS = {"Pending": "1500000000000011", "Approved": "1500000000000012", "Rejected": "1500000000000013"}

    def __init__(self, *, project: str = "1200000000000456", workspace: str = "1200000000000123"):
        super().__init__()
        self.project, self.workspace = project, workspace
        self.tasks: dict[str, dict] = {}
        self.stories: dict[str, list[dict]] = {}
        self._ids = itertools.count(1209000000000001)
        self._state_lock = threading.Lock()

    def _story(self, gid: str, subtype: str, text: str, by: str) -> None:
        self.stories[gid].append({"gid": str(next(self._ids)), "resource_type": "story", "resource_subtype": subtype,
                                  "text": text, "created_by": {"gid": "77", "resource_type": "user", "email": by}})

    def move_to_section(self, gid: str, section: str, *, by: str, comment: str = "") -> None:
        """Someone drags the task to another section of the project (board column)."""
        with self._state_lock:
            self.tasks[gid]["memberships"] = [{"project": {"gid": self.project, "resource_type": "project"},
                                               "section": {"gid": self.SECTIONS[section], "resource_type": "section",
                                                           "name": section}}]
            if comment:
                self._story(gid, "comment_added", comment, by)
            self._story(gid, "section_changed", f"moved this Task from \"To review\" to \"{section}\"", by)

    def set_approval(self, gid: str, option: str | None, *, by: str, comment: str = "") -> None:
        """Someone picks an option of the "Approval" enum custom field (None clears it)."""
        with self._state_lock:
            [field] = self.tasks[gid]["custom_fields"]
            field["enum_value"] = None if option is None else {
                "gid": self.OPTIONS[option], "resource_type": "enum_option", "name": option, "enabled": True}
            field["display_value"] = option
            if comment:
                self._story(gid, "comment_added", comment, by)
            self._story(gid, "enum_custom_field_changed", f"changed Approval to \"{option}\"", by)

    @property
    def base_url(self) -> str:
        return self.url + "/api/1.0"

    def complete(self, gid: str, *, by: str, comment: str = "") -> None:
        with self._state_lock:
            self.tasks[gid].update(completed=True, completed_by={"gid": "77", "email": by})
            if comment:
                self.stories[gid].append({"resource_subtype": "comment_added", "text": comment,
                                          "created_by": {"gid": "77", "email": by}})
            self.stories[gid].append({"resource_subtype": "marked_complete", "text": "completed this task",
                                      "created_by": {"gid": "77", "email": by}})

    @staticmethod
    def _out(r: Recorded, obj):
        return asana_select(obj, r.query.get("opt_fields", [None])[0])

    def answer(self, r: Recorded):
        if r.header("Authorization") != f"Bearer {ASANA_TOKEN}":
            return 401, {}, {"errors": [{"message": "Not Authorized"}]}
        path = r.path.removeprefix("/api/1.0")
        with self._state_lock:
            if r.method == "GET" and path == "/users/me":
                return 200, {}, {"data": {"gid": "42", "name": "Ops Bot", "email": "ops@acme.example"}}
            if r.method == "GET" and (m := re.fullmatch(r"/projects/(\w+)", path)):
                if m[1] != self.project:
                    return 404, {}, {"errors": [{"message": f"project: Not a recognized ID: {m[1]}"}]}
                return 200, {}, {"data": {"gid": self.project, "name": "Campaign approvals"}}
            if r.method == "POST" and path == "/tasks":
                data = r.json().get("data") or {}
                if not data.get("workspace") and not data.get("projects"):
                    return 400, {}, {"errors": [{"message": "workspace: Missing input"}]}
                if data.get("projects") and data["projects"] != [self.project]:
                    return 400, {}, {"errors": [{"message": "projects: [0]: Not a recognized ID"}]}
                gid = str(next(self._ids))
                task = {"gid": gid, "resource_type": "task", "name": data.get("name", ""), "notes": data.get("notes", ""),
                        "completed": False, "completed_at": None, "completed_by": None,
                        "permalink_url": f"https://app.asana.com/0/{self.project}/{gid}",
                        "memberships": [{"project": {"gid": self.project, "resource_type": "project"},
                                         "section": {"gid": self.SECTIONS["To review"], "resource_type": "section",
                                                     "name": "To review"}}],
                        "custom_fields": [{"gid": self.FIELD_GID, "resource_type": "custom_field", "name": "Approval",
                                           "type": "enum", "resource_subtype": "enum", "display_value": None,
                                           "enum_value": None}]}
                self.tasks[gid] = task
                self.stories[gid] = []
                self._story(gid, "added_to_project", "added to Campaign approvals", "ops@acme.example")
                return 201, {}, {"data": self._out(r, task)}
            if r.method == "GET" and path == "/tasks":
                items = [t for t in self.tasks.values() if r.query.get("project") == [self.project]]
                return 200, {}, {"data": self._out(r, items), "next_page": None}
            if m := re.fullmatch(r"/tasks/(\d+)(/stories)?", path):
                task = self.tasks.get(m[1])
                if task is None:
                    return 404, {}, {"errors": [{"message": "task: Unknown object"}]}
                if m[2] and r.method == "GET":
                    return 200, {}, {"data": self._out(r, list(self.stories[m[1]]))}
                if m[2] and r.method == "POST":
                    story = {"resource_subtype": "comment_added", "text": r.json()["data"]["text"],
                             "created_by": {"gid": "42", "email": "ops@acme.example"}}
                    self.stories[m[1]].append(story)
                    return 201, {}, {"data": story}
                if r.method == "PUT":
                    task.update(r.json().get("data") or {})
                    return 200, {}, {"data": self._out(r, task)}
                return 200, {}, {"data": self._out(r, task)}
        return 404, {}, {"errors": [{"message": f"No matching route for request {r.method} {path}"}]}


class JiraServer(LocalHTTPServer):
    """``/rest/api/3``; Basic auth; ADF descriptions; ``{"errorMessages": [...], "errors": {...}}``."""

    WORKFLOW = [("11", "Approve", "Approved", "done"), ("21", "Reject", "Rejected", "done"),
                ("31", "Done", "Done", "done"), ("41", "Back to review", "In Review", "indeterminate")]

    def __init__(self, *, project: str = "OPS"):
        super().__init__()
        self.project = project
        self.issues: dict[str, dict] = {}
        self._ids = itertools.count(10000)
        self._state_lock = threading.Lock()
        self.limited_until = 0.0
        self.refused = 0

    def limit_for(self, seconds: float) -> None:
        """Jira's cost-based limit is hit: every call is a 429 until the reset, which the answer gives
        only as ``X-RateLimit-Reset`` (ISO 8601, UTC), with ``RateLimit-Reason`` and no Retry-After."""
        self.limited_until = time.time() + seconds

    def _rate_limited(self):
        if time.time() >= self.limited_until:
            return None
        self.refused += 1
        reset = datetime.datetime.fromtimestamp(self.limited_until, datetime.UTC)
        return 429, {"X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "X-RateLimit-Limit": "100",
                     "X-RateLimit-Remaining": "0", "RateLimit-Reason": "jira-quota-tenant-based"}, {
            "errorMessages": ["Rate limit exceeded."], "errors": {}}

    def move(self, key: str, status: str, *, by: str, comment: str = "") -> None:
        """Someone moves the issue in Jira (and maybe comments)."""
        with self._state_lock:
            issue = self.issues[key]
            issue["status"] = status
            issue["histories"].append({"author": {"accountId": "5b10a", "emailAddress": by},
                                       "items": [{"field": "status", "toString": status}]})
            if comment:
                issue["comments"].append({"body": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": comment}]}]}})

    def _issue_json(self, issue: dict) -> dict:
        category = next((c for _, _, to, c in self.WORKFLOW if to == issue["status"]), "new")
        return {"id": issue["id"], "key": issue["key"], "fields": {
            "status": {"name": issue["status"], "statusCategory": {"key": category}},
            "labels": issue["fields"].get("labels", []),
            "comment": {"comments": list(issue["comments"]), "total": len(issue["comments"])}},
            "changelog": {"histories": list(issue["histories"])}}

    def answer(self, r: Recorded):
        expected = "Basic " + base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if r.header("Authorization") != expected:
            return 401, {}, {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                             "errors": {}}
        path = r.path
        with self._state_lock:
            if (limited := self._rate_limited()) is not None:
                return limited
            if r.method == "GET" and path == "/rest/api/3/myself":
                return 200, {}, {"accountId": "5b10ac", "emailAddress": JIRA_EMAIL, "displayName": "Ops Bot"}
            if r.method == "GET" and (m := re.fullmatch(r"/rest/api/3/project/(\w+)", path)):
                if m[1] != self.project:
                    return 404, {}, {"errorMessages": [f"No project could be found with key '{m[1]}'."], "errors": {}}
                return 200, {}, {"id": "10001", "key": self.project, "name": "Operations"}
            if r.method == "POST" and path == "/rest/api/3/issue":
                fields = r.json().get("fields") or {}
                errors = {}
                if (fields.get("project") or {}).get("key") != self.project:
                    errors["project"] = "valid project is required"
                if not fields.get("summary"):
                    errors["summary"] = "You must specify a summary of the issue."
                if not isinstance(fields.get("description"), dict) or fields["description"].get("type") != "doc":
                    errors["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                if errors:
                    return 400, {}, {"errorMessages": [], "errors": errors}
                issue_id = str(next(self._ids))
                key = f"{self.project}-{len(self.issues) + 1}"
                self.issues[key] = {"id": issue_id, "key": key, "fields": fields, "status": "To Review",
                                    "comments": [], "histories": []}
                return 201, {}, {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"}
            if r.method == "GET" and path == "/rest/api/3/search/jql":
                jql = r.query.get("jql", [""])[0]
                label = re.search(r'labels = "([^"]+)"', jql)
                found = [self._issue_json(i) for i in self.issues.values()
                         if label and label[1] in i["fields"].get("labels", [])]
                return 200, {}, {"issues": found[: int(r.query.get("maxResults", ["50"])[0])], "isLast": True}
            if m := re.fullmatch(r"/rest/api/3/issue/([\w-]+)(/transitions|/comment)?", path):
                issue = self.issues.get(unquote(m[1])) or next(
                    (i for i in self.issues.values() if i["id"] == m[1]), None)
                if issue is None:
                    return 404, {}, {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                                     "errors": {}}
                if m[2] == "/comment" and r.method == "POST":
                    issue["comments"].append({"body": r.json()["body"], "author": {"emailAddress": JIRA_EMAIL}})
                    return 201, {}, {"id": str(len(issue["comments"]))}
                if m[2] == "/transitions" and r.method == "GET":
                    return 200, {}, {"transitions": [{"id": i, "name": n, "to": {"name": to}}
                                                     for i, n, to, _ in self.WORKFLOW if to != issue["status"]]}
                if m[2] == "/transitions" and r.method == "POST":
                    wanted = r.json()["transition"]["id"]
                    step = next((w for w in self.WORKFLOW if w[0] == wanted), None)
                    if step is None:
                        return 400, {}, {"errorMessages": ["Transition id '%s' is not valid for this issue." % wanted],
                                         "errors": {}}
                    issue["status"] = step[2]
                    issue["histories"].append({"author": {"accountId": "5b10ac", "emailAddress": JIRA_EMAIL},
                                               "items": [{"field": "status", "toString": step[2]}]})
                    return 204, {}, None
                if r.method == "GET":
                    return 200, {}, self._issue_json(issue)
        return 404, {}, {"errorMessages": [f"no route {r.method} {path}"], "errors": {}}


PBI_TENANT, PBI_CLIENT, PBI_SECRET = "contoso-tenant", "app-client-id", "pbi-client-SECRET"


class PowerBIServer(LocalHTTPServer):
    """The Entra ID token endpoint and Power BI's push-dataset REST API on one local server."""

    SCOPE = "https://analysis.windows.net/powerbi/api/.default"

    def __init__(self, *, group: str = "f089354e-8366-4e18-aea3-4cb4a3a50b48"):
        super().__init__()
        self.group = group
        self.datasets: dict[str, dict] = {}
        self.rows: dict[str, list[dict]] = {}
        self.tokens_issued = 0
        self._state_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.url + "/v1.0/myorg"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{PBI_TENANT}/oauth2/v2.0/token"

    def answer(self, r: Recorded):
        from urllib.parse import parse_qs

        if r.path == f"/{PBI_TENANT}/oauth2/v2.0/token" and r.method == "POST":
            form = {k: v[0] for k, v in parse_qs(r.body.decode()).items()}
            if form.get("grant_type") != "client_credentials" or form.get("scope") != self.SCOPE:
                return 400, {}, {"error": "invalid_request", "error_description": "AADSTS900144: bad grant or scope"}
            if (form.get("client_id"), form.get("client_secret")) != (PBI_CLIENT, PBI_SECRET):
                return 401, {}, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"}
            with self._state_lock:
                self.tokens_issued += 1
            return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0eXAiOiJKV1Qi.pbi-token"}
        if r.header("Authorization") != "Bearer eyJ0eXAiOiJKV1Qi.pbi-token":
            return 403, {}, {"error": {"code": "PowerBINotAuthorizedException"}}
        prefix = f"/v1.0/myorg/groups/{self.group}/datasets"
        if not r.path.startswith(prefix):
            return 404, {}, {"error": {"code": "PowerBIEntityNotFound", "message": "Couldn't find the workspace"}}
        rest = r.path[len(prefix):]
        with self._state_lock:
            if rest == "" and r.method == "GET":
                return 200, {}, {"value": [{"id": i, "name": d["name"]} for i, d in self.datasets.items()]}
            if rest == "" and r.method == "POST":
                body = r.json()
                if body.get("defaultMode") != "Push" or not body.get("tables"):
                    return 400, {}, {"error": {"code": "InvalidRequest", "message": "defaultMode Push and tables required"}}
                dataset_id = f"cfafbeb1-{len(self.datasets) + 1:04d}"
                self.datasets[dataset_id] = body
                self.rows[dataset_id] = []
                return 201, {}, {"id": dataset_id, "name": body["name"],
                                 "defaultRetentionPolicy": r.query.get("defaultRetentionPolicy", ["None"])[0]}
            if (m := re.fullmatch(r"/([\w-]+)/tables/(\w+)/rows", rest)) and r.method == "POST":
                dataset = self.datasets.get(m[1])
                table = next((t for t in (dataset or {}).get("tables", []) if t["name"] == m[2]), None)
                if table is None:
                    return 404, {}, {"error": {"code": "ItemNotFound", "message": "table not found"}}
                rows = r.json().get("rows") or []
                if len(rows) > 10_000:
                    return 400, {}, {"error": {"code": "InvalidRequest", "message": "more than 10000 rows"}}
                names = {c["name"] for c in table["columns"]}
                unknown = {k for row in rows for k in row} - names
                if unknown:
                    return 400, {}, {"error": {"code": "InvalidRequest", "message": f"unknown columns {sorted(unknown)}"}}
                self.rows[m[1]].extend(rows)
                return 200, {}, {}
        return 404, {}, {"error": {"code": "NotFound"}}


BYNDER_TOKEN, AEM_TOKEN = "bynder-permanent-SECRET", "ims-token-SECRET"
APRIMO_CLIENT, APRIMO_SECRET = "aprimo-client", "aprimo-SECRET"


class BynderServer(LocalHTTPServer):
    """``/api/v4/media/``: an array of media; ``archive`` / ``limited`` / ``limitedDate``; errors
    ``{"message", "statuscode"}``."""

    def __init__(self):
        super().__init__()
        self.media: dict[str, dict] = {}

    def add(self, media_id: str, name: str, **fields) -> dict:
        item = {"id": media_id, "name": name, "type": "image", "extension": ["png"], "fileSize": 48213,
                "archive": 0, "limited": 0, "limitedDate": None, "dateModified": "2026-11-30T10:00:00Z",
                "original": f"https://cdn.bynder.example/{media_id}/{name}.png",
                "thumbnails": {"mini": f"https://cdn.bynder.example/{media_id}/mini.png",
                               "thul": f"https://cdn.bynder.example/{media_id}/thul.png",
                               "webimage": f"https://cdn.bynder.example/{media_id}/web.png"}, **fields}
        self.media[media_id] = item
        return item

    def answer(self, r: Recorded):
        if r.header("Authorization") != f"Bearer {BYNDER_TOKEN}":
            return 401, {}, {"message": "Unauthorized", "statuscode": 401}
        if r.path == "/api/v4/media/" and r.method == "GET":
            keyword = r.query.get("keyword", [""])[0].lower()
            return 200, {}, [m for m in self.media.values() if keyword in m["name"].lower()]
        if (m := re.fullmatch(r"/api/v4/media/([\w-]+)/", r.path)) and r.method == "GET":
            item = self.media.get(m[1])
            return (200, {}, item) if item else (404, {}, {"message": "Media not found", "statuscode": 404})
        return 404, {}, {"message": "Not found", "statuscode": 404}


class AEMServer(LocalHTTPServer):
    """AEM Assets HTTP API: ``/api/assets/<folder>.json`` in Siren; asset metadata carries
    ``prism:expirationDate`` and ``dam:status``."""

    def __init__(self):
        super().__init__()
        self.assets: dict[str, dict] = {}

    def add(self, name: str, *, expires: str | None = None, status: str = "approved") -> None:
        self.assets[name] = {"expires": expires, "status": status}

    def _entity(self, name: str) -> dict:
        asset = self.assets[name]
        meta = {"dc:format": "image/png", "dam:size": 52000, "dam:status": asset["status"]}
        if asset["expires"]:
            meta["prism:expirationDate"] = asset["expires"]
        return {"class": ["assets/asset"], "properties": {"name": name, "title": name.rsplit(".", 1)[0].title(),
                                                          "metadata": meta},
                "links": [{"rel": ["self"], "href": f"{self.url}/api/assets/offers/{name}.json"},
                          {"rel": ["thumbnail"], "href": f"{self.url}/content/dam/offers/{name}/thumb.png"},
                          {"rel": ["content"], "href": f"{self.url}/content/dam/offers/{name}"}]}

    def answer(self, r: Recorded):
        if r.header("Authorization") != f"Bearer {AEM_TOKEN}":
            return 401, {}, {"class": ["core/response"], "properties": {"status.code": 401}}
        if r.path == "/api/assets/offers.json":
            return 200, {}, {"class": ["assets/folder"], "properties": {
                "name": "offers", "title": "Offers", "srn:paging": {"total": len(self.assets), "offset": 0, "limit": 20}},
                "entities": [self._entity(n) for n in self.assets],
                "links": [{"rel": ["self"], "href": f"{self.url}/api/assets/offers.json"}]}
        if (m := re.fullmatch(r"/api/assets/offers/(.+)\.json", r.path)) and m[1] in self.assets:
            return 200, {}, self._entity(m[1])
        return 404, {}, {"class": ["core/response"], "properties": {"status.code": 404}}


class AprimoServer(LocalHTTPServer):
    """Aprimo: the token endpoint, ``/api/core/search/records`` and ``/api/core/record/{id}`` with
    ``API-VERSION: 1`` and HAL; paging in the ``page``/``pageSize`` request headers."""

    def __init__(self):
        super().__init__()
        self.records: dict[str, dict] = {}

    def add(self, record_id: str, title: str, status: str = "Released") -> None:
        self.records[record_id] = {"id": record_id, "title": title, "status": status, "contentType": "image/png",
                                   "_links": {"self": {"href": f"{self.url}/api/core/record/{record_id}"},
                                              "thumbnail": {"href": f"{self.url}/thumbs/{record_id}.png"}}}

    def answer(self, r: Recorded):
        from urllib.parse import parse_qs

        if r.path == "/login/connect/token" and r.method == "POST":
            form = {k: v[0] for k, v in parse_qs(r.body.decode()).items()}
            if (form.get("client_id"), form.get("client_secret"), form.get("scope")) != (APRIMO_CLIENT, APRIMO_SECRET, "api"):
                return 400, {}, {"error": "invalid_client"}
            return 200, {}, {"access_token": "aprimo-jwt", "expires_in": 3600, "token_type": "Bearer"}
        if r.header("Authorization") != "Bearer aprimo-jwt" or r.header("API-VERSION") != "1":
            return 401, {}, {"exceptionType": "UnauthorizedException", "exceptionMessage": "Not authorized"}
        if r.path == "/api/core/search/records" and r.method == "POST":
            words = (r.json().get("searchExpression") or {}).get("parameters") or [""]
            items = [rec for rec in self.records.values() if str(words[0]).lower() in rec["title"].lower()]
            return 200, {}, {"items": items, "page": int(r.header("page") or 1),
                             "pageSize": int(r.header("pageSize") or 50), "totalCount": len(items), "_links": {}}
        if (m := re.fullmatch(r"/api/core/record/(\w+)", r.path)) and m[1] in self.records:
            return 200, {}, self.records[m[1]]
        if r.path == "/api/core/records":
            return 200, {}, {"items": list(self.records.values()), "page": 1, "pageSize": 1, "totalCount": 1}
        return 404, {}, {"exceptionType": "NotFoundException", "exceptionMessage": "Record not found"}
