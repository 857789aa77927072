"""Step 1 of the SQL compatibility check (see README.md): run every analytics SQL path on the
ClickHouse in CLICKHOUSE_URL's server (18.16 here) in a scratch database, recording each statement
as sent, into sql_recorded.json."""
import datetime as dt, json, os, uuid
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CLICKHOUSE_URL"] = os.environ.get("CLICKHOUSE_URL", "clickhouse://default@127.0.0.1:9000/x").rsplit("/", 1)[0] + "/ce_analytics_compat"
import sys; sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
import django; django.setup()
from clickhouse_driver import Client
recorded = []
orig = Client.execute
def rec(self, query, params=None, **kw):
    if isinstance(params, list):  # insert
        vals = []
        for row in params:
            items = []
            for v in row:
                if v is None: items.append("NULL")
                elif isinstance(v, str): items.append("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'")
                elif isinstance(v, dt.datetime): items.append("'" + v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "'")
                else: items.append(repr(v))
            vals.append("(" + ", ".join(items) + ")")
        recorded.append(query + " " + ", ".join(vals))
    else:
        recorded.append(self.substitute_params(query, params or {}, self.connection.context) if params else query)
    return orig(self, query, params, **kw)
Client.execute = rec
from apps.core import clickhouse as ch
from apps.analytics import clickhouse_schema, selectors, services, events
ch.execute("DROP DATABASE IF EXISTS ce_analytics_compat", with_database=False)
clickhouse_schema.migrate(); clickhouse_schema.migrate()
start = dt.datetime(2024, 1, 5, tzinfo=dt.timezone.utc)
def row(t, ts, **f): return events.row_to_insert(events.to_row(t, uuid.uuid4().hex, int(ts.timestamp()*1e6), f))
rows = [row("bid_response", start + dt.timedelta(minutes=i), campaign_id="7", request_id=str(i), latency_us=100+i) for i in range(50)]
rows += [row("no_bid", start + dt.timedelta(minutes=i), reason="x", latency_us=50) for i in range(10)]
rows += [row("win", start + dt.timedelta(minutes=i), campaign_id="7", win_price=1000.0, extra={"a": 1}) for i in range(5)]
rows += [row("click", start + dt.timedelta(minutes=i), campaign_id="7") for i in range(2)]
rows += [row("win", dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc), campaign_id="7", win_price=1.0)]
ch.insert("analytics_events", events.COLUMNS, rows)
ch.insert("analytics_events", events.COLUMNS, rows[:10])
results = {}
for g in ("hour", "day"):
    results[g] = selectors.campaign_report(campaign_id=7, start=start, end=start + dt.timedelta(hours=3), granularity=g)["totals"]
results["live"] = len(selectors.live_stats(seconds=60)["points"])
results["ids"] = selectors.campaign_ids_with_events(days=100000)
results["events"] = len(selectors.event_list(campaign_id="7"))
results["events_by_id"] = len(selectors.event_list(event_ids=[rows[0][0], rows[1][0]]))
ch.execute("CREATE TABLE IF NOT EXISTS rt AS analytics_events")
ch.insert("rt", events.COLUMNS, rows[-1:])
results["parts"] = services.partitions_list(table="rt")
results["dropped"] = services.partitions_drop_expired(days=30, table="rt", now=dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc))
print(json.dumps(results, default=str))
json.dump(recorded, open("sql_recorded.json", "w"))
ch.execute("DROP DATABASE IF EXISTS ce_analytics_compat", with_database=False)
