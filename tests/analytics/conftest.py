import uuid

import pytest

from apps.analytics import testing
from apps.core import redis as redis_store


@pytest.fixture(scope="session")
def clickhouse_db():
    """The test ClickHouse database (CLICKHOUSE_URL) with the analytics migrations applied by the
    same code as ``manage.py migrate_clickhouse``."""
    return testing.clickhouse_schema()


@pytest.fixture
def stream():
    """A Redis stream of this test's own (other tests may emit into the default one); removed after."""
    name = f"analytics:test:{uuid.uuid4().hex[:12]}"
    yield name
    client = redis_store.client()
    client.delete(name, f"{name}:dead", f"{name}:writer-lock")


@pytest.fixture
def campaign_tag():
    """A campaign id no other test uses, so assertions can be scoped to this test's rows."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def past_window(clickhouse_db):
    """Three days inside a random month between 1975 and 2099 that only this test writes into; the
    month's partition is dropped afterwards so repeated runs neither collide nor pile up partitions."""
    import datetime as dt
    import random

    from apps.core import clickhouse as ch

    rng = random.Random()
    start = dt.datetime(rng.randrange(1975, 2100), rng.randrange(1, 13), rng.randrange(1, 26), tzinfo=dt.timezone.utc)
    yield start, start + dt.timedelta(days=3)
    ch.execute(f"ALTER TABLE analytics_events DROP PARTITION {start:%Y%m}", kind="ddl")
