"""A local Redis Cluster of 3 masters (Debian's ``redis-server --cluster-enabled yes``), for the suite's
cluster pass and ``bench/redis_cluster.py`` (which can also start one master holding every slot:
``LocalRedisCluster(masters=1)``, the cluster client's code paths on one server process).

Ports: ``7001..7003 + (REDIS_PORT - 6390) * 10`` (``REDIS_CLUSTER_BASE_PORT`` overrides the 7000
base) so engineers sharing a machine, each with their own ``REDIS_PORT``, never collide. A cluster
bus port is the port + 10000.

    python -m tests.support.redis_cluster -- <command...>

starts the cluster, runs the command with ``REDIS_URL=redis+cluster://127.0.0.1:p1,p2,p3`` (and
``REDIS_CLUSTER_TESTS=1``), stops the cluster and exits with the command's code. scripts/test.sh runs
the cluster modules of the suite that way (``CLUSTER_TEST_MODULES``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.support.processes import ManagedProcess
from tests.support.wait import wait_until

HOST = "127.0.0.1"


def base_port() -> int:
    base = int(os.environ.get("REDIS_CLUSTER_BASE_PORT", "7000"))
    return base + (int(os.environ.get("REDIS_PORT", "6390")) - 6390) * 10


class LocalRedisCluster:
    def __init__(self, masters: int = 3, *, first_port: int | None = None):
        self.binary = shutil.which("redis-server")
        if self.binary is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server / redis-cli are not installed (scripts/services.sh installs them)")
        first = first_port if first_port is not None else base_port() + 1
        self.ports = [first + i for i in range(masters)]
        self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.processes = [
            ManagedProcess([self.binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                            "--cluster-node-timeout", "2000", "--dir", str(self.dir)],
                           cwd=self.dir, name=f"redis-cluster-{port}")
            for port in self.ports
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.ports)

    def start(self) -> LocalRedisCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalRedisCluster:
        for process in self.processes:
            process.start()
        for port, process in zip(self.ports, self.processes, strict=True):
            process.wait_ready(lambda port=port: redis.Redis(host=HOST, port=port).ping(), timeout=10, interval=0.02)
        if int(redis.Redis(host=HOST, port=self.ports[0]).cluster("info").get("cluster_slots_assigned", 0)) == 0:
            if len(self.ports) == 1:  # redis-cli --cluster create wants 3 masters: one node takes every slot
                redis.Redis(host=HOST, port=self.ports[0]).execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            else:
                subprocess.run(["redis-cli", "--cluster", "create", *(f"{HOST}:{p}" for p in self.ports),
                                "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
        wait_until(self._ok, timeout=30, interval=0.05, ignore=(redis.RedisError,), message="the Redis Cluster never reached cluster_state:ok")
        return self

    def _ok(self) -> bool:
        if not all(redis.Redis(host=HOST, port=p).cluster("info").get("cluster_state") == "ok" for p in self.ports):
            return False
        client = RedisCluster(startup_nodes=[ClusterNode(HOST, p) for p in self.ports])
        try:
            client.set("cluster:probe", "1")  # every node agrees on the slot map
            return client.get("cluster:probe") == b"1"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.processes:
            process.stop(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    with LocalRedisCluster() as cluster:
        env = dict(os.environ, REDIS_URL=cluster.url, REDIS_CLUSTER_TESTS="1")
        print(f"Redis Cluster up: {cluster.url}", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
