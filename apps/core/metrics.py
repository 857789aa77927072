"""Prometheus exposition for every process. Metrics themselves are module-level objects next to the
code they measure. With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn workers), samples from all
worker processes are aggregated."""
import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
