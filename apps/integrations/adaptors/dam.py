"""Creative libraries: Adobe AEM Assets (HTTP API, Siren), Bynder (API v4) and Aprimo DAM.

Each adaptor searches assets and reads one asset's validity from the DAM's own fields:

* AEM — ``prism:expirationDate`` (past: expired) and ``dam:status`` (``rejected``: unapproved;
  with ``options.require_approved``, anything but ``approved``). Options: ``folder`` (``offers``).
  Credentials: ``token`` (Cloud Service IMS bearer) or ``username``/``password`` (6.5).
* Bynder — ``archive`` (1: withdrawn), ``limited`` with ``limitedDate`` (past: expired). No
  ``Retry-After`` on its 429 (4,500 requests / 5 min per IP): our bucket stays at 8/s. Credentials:
  ``token`` (permanent token or a client-credentials JWT).
* Aprimo — ``status`` only: ``Released`` is valid, ``Draft`` unapproved, ``Archived`` withdrawn.
  Calls carry ``API-VERSION: 1`` and ``Accept: application/hal+json``; the token comes from
  ``options.token_url`` (``https://<tenant>.aprimo.com/login/connect/token``) with client credentials.
"""
from __future__ import annotations

import abc
import datetime as dt
import mimetypes
import threading
import time
from dataclasses import asdict, dataclass

import httpx

from apps.core.outbound import OutboundClient, OutboundError

from .base import Adaptor, ConnectionProblem, plain_words, register


@dataclass(frozen=True)
class Asset:
    source: str
    id: str
    name: str
    thumbnail_url: str
    url: str
    size_bytes: int | None
    mime: str
    valid_until: dt.datetime | None
    blocked_reason: str  # "" = may be served

    def as_json(self, connection: str) -> dict:
        data = asdict(self)
        data["valid_until"] = self.valid_until.isoformat().replace("+00:00", "Z") if self.valid_until else None
        data["valid"] = not self.blocked_reason
        data["connection"] = connection
        return data


def _moment(value) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _expired(until: dt.datetime | None, now: dt.datetime) -> str:
    return f"asset expired {until:%Y-%m-%d %H:%M} UTC" if until is not None and until <= now else ""


class DamAdaptor(Adaptor):
    @abc.abstractmethod
    def search(self, query: str, *, limit: int = 20) -> list[Asset]:
        ...

    @abc.abstractmethod
    def fetch(self, asset_id: str) -> Asset:
        ...


@register
class AEMAdaptor(DamAdaptor):
    kind = "aem"
    vendor = "AEM Assets"

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.credentials.get("token"):
            headers["Authorization"] = f"Bearer {self.config.credentials['token']}"
        return headers

    def auth(self):
        if not self.config.credentials.get("token") and self.config.credentials.get("username"):
            return httpx.BasicAuth(self.config.credential("username"), self.config.credential("password"))
        return None

    @property
    def folder(self) -> str:
        return str(self.config.option("folder", "")).strip("/")

    def test(self) -> str:
        body = self.quick("GET", f"/api/assets/{self.folder}.json", params={"limit": 1},
                          what=f"folder {self.folder or '/'}").json()
        total = ((body.get("properties") or {}).get("srn:paging") or {}).get("total")
        return f"Connected to AEM Assets; folder {self.folder or '/'} holds {total if total is not None else 'some'} item(s)."

    def _asset(self, entity: dict, now: dt.datetime) -> Asset:
        props = entity.get("properties") or {}
        meta = props.get("metadata") or {}
        links = {rel: link.get("href", "") for link in entity.get("links") or [] for rel in link.get("rel") or []}
        name = props.get("name") or ""
        until = _moment(meta.get("prism:expirationDate") or props.get("prism:expirationDate"))
        status = str(meta.get("dam:status") or props.get("dam:status") or "").lower()
        blocked = _expired(until, now)
        if not blocked and (status == "rejected" or (self.config.option("require_approved") and status != "approved")):
            blocked = f"not approved in AEM (dam:status {status or 'unset'})"
        path = links.get("self", "").replace("/api/assets/", "/content/dam/").removesuffix(".json")
        return Asset("aem", f"{self.folder}/{name}".strip("/"), props.get("title") or name, links.get("thumbnail", ""),
                     links.get("content") or path, meta.get("dam:size") or props.get("dam:size"),
                     meta.get("dc:format") or mimetypes.guess_type(name)[0] or "", until, blocked)

    def search(self, query: str, *, limit: int = 20) -> list[Asset]:
        # The Assets HTTP API lists a folder (Siren); names are matched here.
        body = self.client.get(f"/api/assets/{self.folder}.json", params={"offset": 0, "limit": 100}).json()
        now = dt.datetime.now(dt.UTC)
        found = [self._asset(e, now) for e in body.get("entities") or [] if "assets/asset" in (e.get("class") or [])]
        wanted = query.lower().strip()
        return [a for a in found if not wanted or wanted in a.name.lower() or wanted in a.id.lower()][:limit]

    def fetch(self, asset_id: str) -> Asset:
        body = self.client.get(f"/api/assets/{asset_id.strip('/')}.json").json()
        return self._asset(body, dt.datetime.now(dt.UTC))


@register
class BynderAdaptor(DamAdaptor):
    kind = "bynder"
    vendor = "Bynder"

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "Authorization": f"Bearer {self.config.credential('token')}"}

    def test(self) -> str:
        self.quick("GET", "/api/v4/media/", params={"limit": 1})
        return "Connected to Bynder; the asset bank answers."

    def _asset(self, media: dict, now: dt.datetime) -> Asset:
        until = _moment(media.get("limitedDate")) if int(media.get("limited") or 0) else None
        blocked = "withdrawn in Bynder (archived)" if int(media.get("archive") or 0) else _expired(until, now)
        thumbs = media.get("thumbnails") or {}
        name = media.get("name") or ""
        extension = (media.get("extension") or [""])[0] if isinstance(media.get("extension"), list) else ""
        mime = mimetypes.guess_type(f"x.{extension}")[0] if extension else ""
        return Asset("bynder", str(media["id"]), name, thumbs.get("thul") or thumbs.get("mini") or "",
                     media.get("original") or thumbs.get("webimage") or "", media.get("fileSize"),
                     mime or "", until, blocked)

    def search(self, query: str, *, limit: int = 20) -> list[Asset]:
        found = self.client.get("/api/v4/media/", params={"keyword": query, "limit": min(limit, 1000), "page": 1,
                                                          "orderBy": "dateModified desc"}).json()
        now = dt.datetime.now(dt.UTC)
        return [self._asset(m, now) for m in (found if isinstance(found, list) else found.get("media", []))]

    def fetch(self, asset_id: str) -> Asset:
        return self._asset(self.client.get(f"/api/v4/media/{asset_id}/").json(), dt.datetime.now(dt.UTC))


APRIMO_STATUS = {"released": "", "draft": "not approved in Aprimo (status Draft)",
                 "archived": "withdrawn in Aprimo (status Archived)"}


@register
class AprimoAdaptor(DamAdaptor):
    kind = "aprimo"
    vendor = "Aprimo"

    def __init__(self, config):
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        super().__init__(config)
        self.token_client = OutboundClient("aprimo-token", "", timeout=10.0, retries=2, backoff=0.5,
                                           log_context={"connection": str(config.id)})

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/hal+json", "API-VERSION": "1"}

    def _bearer(self) -> dict[str, str]:
        with self._token_lock:
            if self._token is None or self._token[1] <= time.monotonic():
                url = self.config.option("token_url")
                if not url:
                    raise ConnectionProblem("The connection has no token_url option (https://<tenant>.aprimo.com/login/connect/token).")
                form = {"grant_type": "client_credentials", "client_id": self.config.credential("client_id"),
                        "client_secret": self.config.credential("client_secret"), "scope": "api"}
                try:
                    body = self.token_client.post(str(url), data=form, idempotent=True).json()
                except OutboundError as exc:
                    if exc.status_code in (400, 401):
                        raise ConnectionProblem(f"Aprimo refused the client credentials (HTTP {exc.status_code})") from exc
                    raise plain_words(exc, "The Aprimo token endpoint") from exc
                self._token = (body["access_token"], time.monotonic() + max(0, int(body.get("expires_in", 3600)) - 60))
            return {"Authorization": f"Bearer {self._token[0]}"}

    def test(self) -> str:
        self.quick("GET", "/api/core/records", headers={**self._bearer(), "pageSize": "1", "page": "1"})
        return "Connected to Aprimo; records answer."

    def _asset(self, record: dict) -> Asset:
        status = str(record.get("status") or "")
        blocked = APRIMO_STATUS.get(status.lower(), f"not approved in Aprimo (status {status or 'unset'})")
        links = record.get("_links") or {}
        href = lambda name: ((links.get(name) or {}).get("href") or "")  # noqa: E731
        return Asset("aprimo", str(record["id"]), record.get("title") or "", href("thumbnail"),
                     href("masterfilelatestversion") or href("self"), None, record.get("contentType") or "",
                     None, blocked)

    def search(self, query: str, *, limit: int = 20) -> list[Asset]:
        expression = str(self.config.option("search_expression", "Title = ?"))
        body = self.client.post("/api/core/search/records", json={
            "searchExpression": {"expression": expression, "parameters": [query]}, "logRequest": False},
            headers={**self._bearer(), "pageSize": str(min(limit, 100)), "page": "1"}, idempotent=True).json()
        return [self._asset(r) for r in body.get("items") or []]

    def fetch(self, asset_id: str) -> Asset:
        return self._asset(self.client.get(f"/api/core/record/{asset_id}", headers=self._bearer()).json())
