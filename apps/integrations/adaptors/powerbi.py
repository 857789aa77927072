"""Power BI push datasets (learn.microsoft.com/rest/api/power-bi/push-datasets).

Auth: an Entra ID client-credentials token for ``https://analysis.windows.net/powerbi/api/.default``
from ``options.token_url`` (default ``https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token``),
sent as ``Authorization: Bearer``; cached until a minute before it expires. Limits: 10,000 rows per
POST, 1,000,000 rows per hour per dataset, 120 POST-rows per minute (our bucket: 1.5/s).

Options: ``group_id`` (workspace), ``dataset_name`` (default "Campaign Express"), ``table``
(default "CampaignHourly"), ``rows_per_request`` (≤ 10,000), ``token_url``, ``start`` (first hour to
push, ISO 8601; default 24 h before the first push), ``close_delay_minutes`` (10: an hour is closed
once it ended this long ago). Credentials: ``tenant_id``, ``client_id``, ``client_secret``.
"""
from __future__ import annotations

import threading
import time

from apps.core.outbound import OutboundClient, OutboundError

from .base import Adaptor, ConnectionProblem, plain_words, register

SCOPE = "https://analysis.windows.net/powerbi/api/.default"
MAX_ROWS_PER_POST = 10_000

#: the documented table schema of the dataset (Power BI data types)
TABLE_COLUMNS = [
    ("campaign_id", "string"), ("campaign_name", "string"), ("hour", "DateTime"), ("bids", "Int64"),
    ("impressions", "Int64"), ("clicks", "Int64"), ("spend", "Double"), ("ctr", "Double"), ("win_rate", "Double"),
]


@register
class PowerBIAdaptor(Adaptor):
    kind = "powerbi"
    vendor = "Power BI"

    def __init__(self, config):
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        super().__init__(config)
        self.token_client = OutboundClient("powerbi-token", "", timeout=10.0, retries=2, backoff=0.5,
                                           log_context={"connection": str(config.id)})

    # --- auth -----------------------------------------------------------------------------------
    def token_url(self) -> str:
        url = self.config.option("token_url")
        if url:
            return str(url)
        return f"https://login.microsoftonline.com/{self.config.credential('tenant_id')}/oauth2/v2.0/token"

    def access_token(self, *, quick: bool = False) -> str:
        with self._token_lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
            form = {"grant_type": "client_credentials", "client_id": self.config.credential("client_id"),
                    "client_secret": self.config.credential("client_secret"), "scope": SCOPE}
            try:
                response = self.token_client.post(self.token_url(), data=form, idempotent=True,
                                                  **({"retries": 0, "deadline": 2.5, "timeout": 2.5} if quick else {}))
            except OutboundError as exc:
                if exc.status_code in (400, 401):
                    raise ConnectionProblem("Entra ID refused the client credentials (check tenant, client id and "
                                            f"secret): HTTP {exc.status_code}") from exc
                raise plain_words(exc, "The Entra ID token endpoint") from exc
            body = response.json()
            self._token = (body["access_token"], time.monotonic() + max(0, int(body.get("expires_in", 3600)) - 60))
            return self._token[0]

    def _auth_headers(self, *, quick: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token(quick=quick)}"}

    def _group(self) -> str:
        group = self.config.option("group_id")
        if not group:
            raise ConnectionProblem("The connection has no group_id option (the workspace's id).")
        return str(group)

    @property
    def dataset_name(self) -> str:
        return str(self.config.option("dataset_name", "Campaign Express"))

    @property
    def table(self) -> str:
        return str(self.config.option("table", "CampaignHourly"))

    @property
    def rows_per_request(self) -> int:
        return max(1, min(MAX_ROWS_PER_POST, int(self.config.option("rows_per_request", MAX_ROWS_PER_POST))))

    # --- API ------------------------------------------------------------------------------------
    def test(self) -> str:
        headers = self._auth_headers(quick=True)
        found = self.quick("GET", f"/groups/{self._group()}/datasets", headers=headers,
                           what=f"workspace {self._group()}").json()
        names = [d.get("name") for d in found.get("value", [])]
        state = "exists" if self.dataset_name in names else "will be created on the first push"
        return f"Connected to Power BI; workspace found, dataset {self.dataset_name!r} {state}."

    def find_dataset(self) -> str | None:
        found = self.client.get(f"/groups/{self._group()}/datasets", headers=self._auth_headers()).json()
        for dataset in found.get("value", []):
            if dataset.get("name") == self.dataset_name:
                return str(dataset["id"])
        return None

    def create_dataset(self) -> str:
        body = {"name": self.dataset_name, "defaultMode": "Push", "tables": [
            {"name": self.table, "columns": [{"name": n, "dataType": t} for n, t in TABLE_COLUMNS]}]}
        created = self.client.post(f"/groups/{self._group()}/datasets", params={"defaultRetentionPolicy": "basicFIFO"},
                                   json=body, headers=self._auth_headers()).json()
        return str(created["id"])

    def add_rows(self, dataset_id: str, rows: list[dict]) -> None:
        if len(rows) > MAX_ROWS_PER_POST:
            raise ValueError(f"Power BI takes at most {MAX_ROWS_PER_POST} rows per request, got {len(rows)}")
        self.client.post(f"/groups/{self._group()}/datasets/{dataset_id}/tables/{self.table}/rows",
                         json={"rows": rows}, headers=self._auth_headers())
