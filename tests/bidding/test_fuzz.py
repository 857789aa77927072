"""The fuzz corpus (tests/bidding/fuzz.py) in process: it is deterministic, the decoder gives every
case a clean verdict (a request, or ``InvalidRequest`` with the code the case expects) and the
processor answers every request the decoder accepts. test_e2e.py sends the same corpus to every
entry of the real processes."""
from __future__ import annotations

from apps.bidding import openrtb
from tests.bidding import fuzz
from tests.bidding.helpers import make_row

CORPUS = fuzz.corpus()
CODES = {"invalid_json", "invalid_request", "invalid_encoding", "body_too_large"}


def test_the_corpus_is_deterministic_and_covers_every_kind_of_case():
    again = fuzz.corpus()
    assert [(c.name, c.body) for c in again] == [(c.name, c.body) for c in CORPUS]
    assert [c.body for c in fuzz.corpus(seed=1)] != [c.body for c in CORPUS]  # the random part follows the seed
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    kinds = {c.name.split("-", 1)[0] for c in CORPUS}
    assert {"deep", "number", "type", "root", "segment", "string", "escape", "utf8", "truncated", "mutated",
            "random"} <= kinds
    deepest = max(c.body.count(b"[") for c in CORPUS)
    assert deepest >= 30_000 and [c.name for c in CORPUS if len(c.body) > 65_536] == ["over-64-kib"]


def test_the_decoder_gives_every_case_a_clean_verdict():
    wrong = []
    for case in CORPUS:
        try:
            request = openrtb.decode_request(case.body)
        except openrtb.InvalidRequest as exc:
            if not exc.detail or exc.error not in CODES or (case.error and exc.error != case.error):
                wrong.append(f"{case.name}: {exc.error} {exc.detail!r}, expected {case.error}")
            continue
        except Exception as exc:  # noqa: BLE001 - what the test is for: anything but InvalidRequest is a 5xx
            wrong.append(f"{case.name}: {type(exc).__name__}: {exc}")
            continue
        if case.expect != "any" or not request.imp:
            wrong.append(f"{case.name}: accepted, should have been refused")
    assert not wrong, f"{len(wrong)} of {len(CORPUS)}:\n" + "\n".join(wrong[:20])


async def test_the_processor_answers_every_request_the_decoder_accepts(make_processor):
    processor = make_processor([
        make_row(offer_id=1, campaign_id=1), make_row(offer_id=2, campaign_id=2, segments=[7], countries=["USA"]),
        make_row(offer_id=3, campaign_id=3, format="video", width=640, height=480),
        make_row(offer_id=4, campaign_id=4, format="native"),
    ], tmax_cap_ms=60_000)
    accepted = 0
    reasons = set()
    for case in CORPUS:
        try:
            request = openrtb.decode_request(case.body)
        except openrtb.InvalidRequest:
            continue
        accepted += 1
        outcome = await processor.process(request)
        openrtb.encode_response(outcome.response)
        reasons.add(outcome.reason)
    assert accepted > 300
    assert {None, "no_candidates", "currency"} <= reasons  # bids and no-bids, not only one of them
