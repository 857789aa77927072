"""How long ``evaluate_policy --policy offerfit-on`` spends asking OfferFit: N logged Thompson rounds
(10 candidates each) ranked with ``deferActivation`` against a loopback Personalizer stand-in that
answers after ``--latency-ms`` (a remote service's round trip), at each ``--concurrency`` — wall
time and rounds/s of ``apps.rl.services.evaluation._offerfit_on`` (the ranking stage alone: no
ClickHouse read, no estimators). Needs ``REDIS_URL`` (the OfferFit breaker); the candidates are not
offer ids, so Postgres is not read.

    REDIS_URL=redis://…/15 .venv/bin/python bench/offerfit_eval.py [--rounds 1000] [--latency-ms 20] [--concurrency 1 8 16]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from apps.core import redis as redis_store  # noqa: E402
from apps.rl.services import evaluation as service  # noqa: E402


def serve(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            ids = [a["id"] for a in body["actions"]]
            data = json.dumps({"ranking": [{"id": a, "probability": 1 / len(ids)} for a in ids],
                               "eventId": body["eventId"], "rewardActionId": ids[0]}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    args = parser.parse_args()
    httpd = serve(args.latency_ms / 1000)
    settings.OFFERFIT_API_URL = f"http://127.0.0.1:{httpd.server_address[1]}"
    settings.OFFERFIT_API_KEY = "bench"
    candidates = [f"offer-{i}" for i in range(10)]
    rows = [{"source": "thompson", "candidates": candidates, "offer_id": candidates[i % 10], "propensity": 0.1,
             "probabilities": [0.1] * 10, "context": json.dumps({"n": i}), "channel": "web", "tier": "gold"}
            for i in range(args.rounds)]
    print(f"{args.rounds} rounds, {args.latency_ms:g} ms per answer, load {os.getloadavg()[0]:.1f}")
    for concurrency in args.concurrency:
        settings.OFFERFIT_EVAL_CONCURRENCY = concurrency
        redis_store.client().delete("{outbound:offerfit}:breaker")
        started = time.perf_counter()
        _, details = service._offerfit_on(rows, max_unranked_share=0.0, progress=None)
        seconds = time.perf_counter() - started
        print(f"concurrency {concurrency:>3}: {seconds:6.2f} s, {args.rounds / seconds:7.0f} rounds/s, "
              f"ranked {details['ranked']}, unranked {details['unranked'] or 0}")
    httpd.shutdown()


if __name__ == "__main__":
    main()
