"""Step 2 (see README.md): replay sql_recorded.json on a current ClickHouse engine (chdb) and report each statement."""
import json
import tempfile

import chdb.session as cs

stmts = json.load(open("sql_recorded.json"))
s = cs.Session(tempfile.mkdtemp())
s.query("CREATE DATABASE IF NOT EXISTS ce_analytics_compat")
s.query("USE ce_analytics_compat")
ok = 0
for q in stmts:
    short = " ".join(q.split())[:110]
    try:
        r = s.query(q, "TSV")
        out = str(r).strip().replace("\n", " | ")[:160]
        ok += 1
        print("OK  ", short, "=>", out)
    except Exception as e:  # noqa: BLE001 - every failing statement is reported, the run goes on
        print("FAIL", short, "\n     ", str(e)[:400])
print(ok, "of", len(stmts))
