"""Two ClickHouse servers of a test's own, forming one cluster of two shards.

Each is Debian's ``clickhouse-server`` (18.16) on free ports with its own data directory and a config
naming both in ``remote_servers`` (cluster ``CLUSTER``), so a ``Distributed`` table on either one
spreads rows over both. No ZooKeeper/Keeper is configured (the runner's per-shard DDL mode is what
this tests). The shared ClickHouse on :9000 is never touched. Stopped, and their directories
removed, when the block ends.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from tests.support.ports import HOST, free_port
from tests.support.processes import ManagedProcess

CLUSTER = "ce_test_two_shards"

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>1</console></logger>
    <listen_host>{host}</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <remote_servers>
        <{cluster}>
{shards}
        </{cluster}>
    </remote_servers>
    <macros><shard>{shard}</shard><replica>{host}-{tcp_port}</replica></macros>
</yandex>
"""

_SHARD = """            <shard><replica><host>{host}</host><port>{port}</port></replica></shard>"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>::/0</ip></networks>
        <profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


def _binary() -> list[str]:
    for name in ("clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"):
        path = shutil.which(name) or (name if Path(name).exists() else None)
        if path:
            return [path]
    if shutil.which("clickhouse"):
        return [shutil.which("clickhouse"), "server"]  # type: ignore[list-item]
    pytest.fail("clickhouse-server is not installed (scripts/services.sh installs it)")


@dataclass
class Shard:
    number: int
    tcp_port: int
    http_port: int
    process: ManagedProcess

    def url(self, database: str) -> str:
        return f"clickhouse://default@{HOST}:{self.tcp_port}/{database}"

    def execute(self, sql: str, params: dict | None = None) -> list[tuple]:
        client = Client(host=HOST, port=self.tcp_port, user="default", connect_timeout=2)
        try:
            return client.execute(sql, params or {})
        finally:
            client.disconnect()

    def _accepts(self) -> bool:
        try:
            return self.execute("SELECT 1") == [(1,)]
        except ch_errors.Error:
            return False


@contextmanager
def two_shard_cluster() -> Iterator[list[Shard]]:
    """Start two servers forming cluster ``CLUSTER`` and yield their :class:`Shard` handles."""
    root = Path(tempfile.mkdtemp(prefix="ce-ch-cluster-"))
    ports = [(free_port(), free_port(), free_port()) for _ in range(2)]
    shards_xml = "\n".join(_SHARD.format(host=HOST, port=tcp) for tcp, _, _ in ports)
    shards: list[Shard] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        for number, (tcp, http, interserver) in enumerate(ports, start=1):
            node = root / f"shard{number}"
            for sub in ("data", "tmp", "user_files", "format_schemas"):
                (node / sub).mkdir(parents=True)
            (node / "users.xml").write_text(_USERS)
            (node / "config.xml").write_text(_CONFIG.format(
                host=HOST, tcp_port=tcp, http_port=http, interserver_port=interserver, root=node,
                cluster=CLUSTER, shards=shards_xml, shard=number))
            process = ManagedProcess([*_binary(), f"--config-file={node / 'config.xml'}"], cwd=node,
                                     log_path=node / "server.log", name=f"clickhouse-shard{number}-{tcp}")
            process.start()
            stack.callback(process.stop, 20)
            shards.append(Shard(number, tcp, http, process))
        for shard in shards:
            shard.process.wait_ready(shard._accepts, timeout=60, interval=0.1)
        yield shards
