"""Manual check (see README.md): the cluster forms of every migration (apps/analytics/clickhouse_cluster.py)
on current ClickHouse through chdb, which has no cluster, no macros and no Keeper. The local tables must
be created; the Distributed, ON CLUSTER and Replicated forms must fail only for the missing cluster
(701) or macros (139), never for syntax (62). Run with the chdb virtualenv's python."""
import importlib.util
import runpy
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("clickhouse_cluster", ROOT / "apps/analytics/clickhouse_cluster.py")
cc = importlib.util.module_from_spec(spec)
sys.modules["clickhouse_cluster"] = cc
spec.loader.exec_module(cc)
from chdb import session  # noqa: E402

db = session.Session(tempfile.mkdtemp(prefix="chdb-cluster-"))
print(db.query("SELECT version()", "CSV"), end="")
db.query("CREATE DATABASE IF NOT EXISTS ccdb")
bad = 0
for path in sorted((ROOT / "apps/analytics/clickhouse_migrations").glob("0*.py")):
    for statement in runpy.run_path(str(path))["OPERATIONS"]:
        plain = cc.plan(statement, cc.Target("analytics", "ccdb"))
        forms = [("local", plain.local[0], None), ("distributed", plain.distributed[0], 701),
                 ("on cluster + replicated", cc.plan(statement, cc.Target("analytics", "ccdb", True, True)).local[0], 701),
                 ("replicated", cc.plan(statement.replace("IF NOT EXISTS ", "IF NOT EXISTS r_", 1),
                                             cc.Target("analytics", "ccdb", replicated=True)).local[0], 139)]
        for form, sql, expected in forms:
            try:
                db.query(sql)
                code = None
            except Exception as exc:  # noqa: BLE001 - chdb raises one error type; the code is in the text
                code = int(str(exc).split("Code: ", 1)[1].split(".", 1)[0])
            ok = code == expected
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} {path.stem} {form}: {'created' if code is None else f'code {code}'}")
sys.exit(1 if bad else 0)
