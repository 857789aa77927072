"""Write (or check) the bid path's replay corpus: requests -> bids and prices, saved with today's code.

The world (offers, profiles, model, config) and what is compared are in ``tests/bidding/replay.py``;
``tests/bidding/test_replay.py`` replays the corpus in the suite. The requests: 2,100 of
``bid_load.make_bodies`` (the realistic mix of ``bid_inprocess.py``, 10 % unknown users) and 900
variants of the OpenRTB examples in /work/shared/openrtb/examples (tests/bidding/openrtb_examples):
known, unknown, anonymous and COPPA users, other countries and device types, floors, deals with and
without our seat, private auctions, block lists, several impressions, video and native. Everything is
drawn from seeded generators: the same command writes the same requests.

    .venv/bin/python bench/replay_corpus.py            # write tests/bidding/data/replay_corpus.jsonl.gz
    .venv/bin/python bench/replay_corpus.py --check    # replay it against the current code
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import gzip
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import bid_load  # noqa: E402

EXAMPLES = ROOT / "tests" / "bidding" / "openrtb_examples"


def example_variants(n: int, rng: random.Random) -> list[bytes]:
    examples = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    out = []
    for r in range(n):
        body = copy.deepcopy(examples[r % len(examples)])
        body["id"] = f"ex-{r}"
        roll = rng.random()
        if roll < 0.55:
            body["user"] = {"id": f"bench-user-{rng.randrange(bid_load.N_USERS)}"}
        elif roll < 0.7:
            body["user"] = {"id": f"new-user-ex-{r}"}
        elif roll < 0.8:
            body.pop("user", None)
        elif roll < 0.9:
            body["user"] = {"id": f"bench-user-{rng.randrange(bid_load.N_USERS)}",
                            "data": [{"id": "dmp", "segment": [{"id": str(s)} for s in rng.sample([3, 7, 11, 150, 999], 2)]}]}
        else:
            body["user"] = {"id": f"bench-user-{rng.randrange(bid_load.N_USERS)}"}
            body["regs"] = {"coppa": 1}
        device = body.setdefault("device", {})
        if rng.random() < 0.7:
            device["geo"] = {"country": rng.choice(["USA", "USA", "US", "GBR", "DEU", "FRA"])}
        if rng.random() < 0.5:
            device["devicetype"] = rng.choice([1, 2, 3, 4, 5, 6, 7])
        for imp in body["imp"]:
            imp["bidfloor"] = rng.choice([0.0, 0.03, 0.5, 1.0, 2.5, 6.0])
            pmp = imp.get("pmp")
            if pmp is not None:
                for deal in pmp["deals"]:
                    if rng.random() < 0.5:
                        deal["wseat"] = ["campaign-express"]
                    deal["bidfloor"] = rng.choice([0.5, 2.0, 4.0, 8.0])
                pmp["private_auction"] = rng.choice([0, 1])
            if "banner" in imp and rng.random() < 0.3:
                imp["banner"]["format"] = [{"w": w, "h": h} for w, h in rng.sample(bid_load.SIZES, 2)]
        if rng.random() < 0.2:
            extra = copy.deepcopy(body["imp"][0])
            extra["id"] = "2"
            body["imp"].append(extra)
        if rng.random() < 0.15:
            body["imp"].append({"id": "9", "native": {"request": "{}"}, "bidfloor": 0.1})
        if rng.random() < 0.15:
            body["bcat"] = ["IAB7-39", "IAB1-1"]
            body["badv"] = ["blocked.example.com", "brand3.example.com"]
        if rng.random() < 0.05:
            body["cur"] = ["EUR"]
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def requests() -> list[bytes]:
    bodies = bid_load.make_bodies(2100, random.Random(21), unknown_ratio=0.1)
    mark = bid_load.UNKNOWN_MARK
    bodies = [b.replace(mark, f"new-user-{i}".encode()) for i, b in enumerate(bodies)]
    return bodies + example_variants(900, random.Random(22))


async def build(path: Path) -> None:
    from tests.bidding.replay import World

    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp) / "models")
        rows = []
        for body in requests():
            rows.append({"request": body.decode(), "outcome": await world.outcome(body)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:  # mtime=0: the same bytes for the same corpus
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    kinds = Counter(r["outcome"].get("reason") or "bid" for r in rows)
    n_bids = sum(len(s["bid"]) for r in rows for s in r["outcome"].get("response", {}).get("seatbid", []))
    print(f"wrote {len(rows)} requests, {n_bids} bids to {path} ({path.stat().st_size // 1024} KiB): {dict(kinds)}")


async def check(path: Path) -> int:
    from tests.bidding.replay import World, load_corpus, same

    corpus = load_corpus(path)
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp) / "models")
        bad = 0
        for row in corpus:
            problems = same(row["outcome"], await world.outcome(row["request"].encode()))
            if problems:
                bad += 1
                if bad <= 5:
                    print(f"{json.loads(row['request'])['id']}: " + "; ".join(problems))
    print(f"{len(corpus) - bad}/{len(corpus)} requests replay identically")
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="replay the corpus instead of writing it")
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    import django

    django.setup()
    from tests.bidding.replay import CORPUS

    path = args.path or CORPUS
    if args.check:
        sys.exit(asyncio.run(check(path)))
    asyncio.run(build(path))


if __name__ == "__main__":
    main()
