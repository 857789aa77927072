import sys

import httpx
import pytest

from apps.core import redis as redis_store
from apps.dsp import platforms as store
from apps.dsp.adapters import PlatformConf
from apps.dsp.conf import DspConfig
from apps.dsp.exchange import DspExchange
from config import env
from tests.support.ports import free_port
from tests.support.processes import start_process

META_SECRET = "test-meta-secret"


@pytest.fixture(scope="session")
def local_dsp():
    """The local DSP servers (apps.dsp.localdsp) in a process of their own; yields the base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with start_process([sys.executable, "-m", "apps.dsp.localdsp", "--port", str(port), "--meta-app-secret", META_SECRET],
                       ready=f"{base}/stats", name="localdsp"):
        yield base


def dsp_stats(base: str) -> dict:
    return httpx.get(f"{base}/stats", timeout=5).json()


def platform(pid: int, name: str, kind: str, url: str, **overrides) -> PlatformConf:
    params = {"ttd": {"publisher_id": "pub-ttd", "supply_source_id": "supply-1"},
              "meta": {"platform_id": "plat-1", "publisher_id": "123", "placement_id": "456"},
              "dv360": {"billing_ids": ["1234567"]}}.get(kind, {})
    credentials = {"app_secret": META_SECRET} if kind == "meta" else {}
    values = dict(id=pid, name=name, kind=kind, endpoint_url=url, params=params, credentials=credentials,
                  timeout_ms=1500)
    values.update(overrides)
    return PlatformConf(**values)


@pytest.fixture
def dsp_config():
    # generous deadlines: this box is shared, and the tests that are about time set their own
    return DspConfig(redis_url=env.env_str("REDIS_URL", env.REDIS_URL), snapshot_poll_seconds=0.05, tmax_cap_ms=3000)


@pytest.fixture
async def make_exchange(redis_client, dsp_config):
    """Publish ``platforms`` and start an exchange on them (no breaker/bucket unless asked)."""
    made = []

    async def build(platforms, *, config=None, events=None, **options):
        store.publish(redis_client, list(platforms))
        options.setdefault("bucket_factory", None)
        options.setdefault("breaker_factory", None)
        aredis = redis_store.async_client(dsp_config.redis_url)
        recorded = events if events is not None else []
        exchange = DspExchange(config or dsp_config, redis=aredis, emit=lambda kind, **f: recorded.append((kind, f)),
                               **options)
        await exchange.start()
        made.append((exchange, aredis))
        return exchange

    yield build
    import asyncio

    for exchange, aredis in made:
        # as tasks waited on with a bound (asyncio.wait does not wait for a cancelled task to give up,
        # as wait_for does): a shutdown stuck in a store call must not hang the suite
        for step in (exchange.stop, aredis.aclose):
            await asyncio.wait({asyncio.ensure_future(step())}, timeout=3)


@pytest.fixture
def eager_celery():
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def run_fanout(platform_rows, body: dict, config: DspConfig | None = None) -> dict:
    """A real fan-out on a fresh event loop over the published platforms (for sync web-side tests)."""
    import asyncio

    from apps.dsp.services import platforms_publish
    from tests.dsp.requests import decoded

    platforms_publish()

    async def go():
        cfg = config or DspConfig(redis_url=env.env_str("REDIS_URL", env.REDIS_URL))
        aredis = redis_store.async_client(cfg.redis_url)
        exchange = DspExchange(cfg, redis=aredis, emit=lambda *a, **k: None, bucket_factory=None, breaker_factory=None)
        await exchange.start()
        try:
            response = await exchange.fanout(body, decoded(body))
            await exchange.flush()
            return response
        finally:
            await exchange.stop()
            await aredis.aclose()

    return asyncio.run(go())
