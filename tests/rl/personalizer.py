"""A local Personalizer v1.0 (rank / reward / activate) for the OfferFit tests, on LocalHTTPServer.

It keeps every rank event: its context, actions, ``deferActivation`` and whether it was activated;
rewards and activations are recorded per event id. As the real service documents, a deferred event
learns nothing until ``events/{id}/activate``: ``trained`` lists the events a reward reached while
active. The ranking comes from ``distribution(context, action ids) → probabilities`` (default: the
second action 0.7, the others share 0.3), ``rewardActionId`` being the most probable action.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.rl import offerfit
from tests.support.http_server import Answer, Recorded

EVENTS = "/personalizer/v1.0/events/"


def second_at_07(context: dict[str, Any], actions: list[str]) -> list[float]:
    if len(actions) == 1:
        return [1.0]
    return [0.7 if i == 1 else 0.3 / (len(actions) - 1) for i in range(len(actions))]


@dataclass
class RankEvent:
    event_id: str
    context: dict[str, Any]
    actions: list[str]
    deferred: bool
    activated: bool = False
    rewards: list[float] = field(default_factory=list)


class Personalizer:
    def __init__(self, distribution: Callable[[dict[str, Any], list[str]], list[float]] = second_at_07):
        self.distribution = distribution
        self.events: dict[str, RankEvent] = {}
        self.activations: list[str] = []
        self.rewards: list[tuple[str, float]] = []
        self.trained: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, recorded: Recorded) -> Answer:
        path = recorded.path
        if path == offerfit.RANK_PATH:
            body = recorded.json()
            actions = [a["id"] for a in body["actions"]]
            context = body["contextFeatures"][0] if body.get("contextFeatures") else {}
            probabilities = self.distribution(context, actions)
            with self._lock:
                self.events[body["eventId"]] = RankEvent(body["eventId"], context, actions,
                                                         deferred=bool(body.get("deferActivation")))
            chosen = actions[max(range(len(actions)), key=lambda i: probabilities[i])]
            ranking = [{"id": a, "probability": p} for a, p in zip(actions, probabilities, strict=True)]
            return 201, {}, {"ranking": ranking, "eventId": body["eventId"], "rewardActionId": chosen}
        if path.startswith(EVENTS) and path.endswith(("/reward", "/activate")):
            event_id = path[len(EVENTS):].rsplit("/", 1)[0]
            with self._lock:
                event = self.events.get(event_id)
                if path.endswith("/activate"):
                    self.activations.append(event_id)
                    if event is not None:
                        event.activated = True
                else:
                    value = float(recorded.json()["value"])
                    self.rewards.append((event_id, value))
                    if event is not None:
                        event.rewards.append(value)
                        if not event.deferred or event.activated:
                            self.trained.append(event_id)
            return 204, {}, None
        if path == offerfit.CATALOG_PATH:
            return 204, {}, None
        return 404, {}, {"error": {"code": "ResourceNotFound", "message": path}}

    def deferred_events(self) -> list[RankEvent]:
        with self._lock:
            return [e for e in self.events.values() if e.deferred]
