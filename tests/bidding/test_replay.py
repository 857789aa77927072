"""The replay corpus (issue 21): today's requests give the bids and prices saved with the corpus.

The corpus (``tests/bidding/data/replay_corpus.jsonl.gz``) was written by ``bench/replay_corpus.py``
from a fixed world (``tests/bidding/replay.py``: offers, profiles, seeded model, config); what is
compared and what is not (bid ids, token issue times) is documented there. A change to the bid path
that is meant to change decisions rewrites the corpus with that command and says so in its commit.
"""
from __future__ import annotations

import json

from tests.bidding.replay import World, load_corpus, same


async def test_replay_corpus_gives_the_same_bids_and_prices(tmp_path):
    corpus = load_corpus()
    assert len(corpus) >= 2000
    world = World(tmp_path / "models")
    failures = []
    n_bids = 0
    for row in corpus:
        outcome = await world.outcome(row["request"].encode())
        n_bids += sum(len(s["bid"]) for s in outcome.get("response", {}).get("seatbid", []))
        problems = same(row["outcome"], outcome)
        if problems:
            failures.append(f"{json.loads(row['request'])['id']}: " + "; ".join(problems))
    assert not failures, f"{len(failures)} of {len(corpus)} requests differ:\n" + "\n".join(failures[:5])
    assert n_bids > len(corpus)  # the corpus bids (most requests, some with several impressions)


async def test_replay_notices_a_changed_price(tmp_path):
    """The comparison can fail: a price off by a cent is reported."""
    row = next(r for r in load_corpus() if r["outcome"].get("response"))
    world = World(tmp_path / "models")
    outcome = await world.outcome(row["request"].encode())
    assert same(row["outcome"], outcome) == []
    outcome["response"]["seatbid"][0]["bid"][0]["price"] += 0.01
    assert any("price" in p for p in same(row["outcome"], outcome))
