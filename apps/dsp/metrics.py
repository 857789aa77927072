"""Prometheus metrics of the DSP fan-out (buffered per process like the bid path's)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

OUTCOMES = Counter("dsp_outcomes", "Platform outcomes of fan-outs", ["platform", "outcome", "reason"])
FANOUT_LATENCY_MS = Histogram("dsp_fanout_latency_ms", "Server-side time of a DSP fan-out, milliseconds",
                              buckets=(5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500))
FANOUTS = Counter("dsp_fanouts", "DSP fan-outs answered")

_children: dict = {}
_latency = None


def record(outcomes, total_ms: float) -> None:
    global _latency
    from apps.core.metrics import buffered

    if _latency is None:
        _latency = (buffered(FANOUT_LATENCY_MS), buffered(FANOUTS))
    _latency[0].observe(total_ms)
    _latency[1].inc()
    for outcome in outcomes:
        key = (outcome.platform.name, outcome.status, outcome.reason or "")
        child = _children.get(key)
        if child is None:
            child = _children[key] = buffered(OUTCOMES.labels(*key))
        child.inc()
