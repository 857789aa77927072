"""grpc.aio's own cost per call: ``BiddingService`` with handlers that answer at once (a fixed no-bid),
no bidder, on the sidecar's server options, in ``--workers`` processes sharing the port
(``SO_REUSEPORT``) as ``run_grpc --workers N``. Driven by ``grpc_load.py``, what it costs per call is
the floor no change to the bid path can go under (bench/README.md, grpc_load)::

    .venv/bin/python bench/grpc_load.py --grpc-command "{python} bench/grpc_floor.py --port {port} --workers {workers}"
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ANSWER = b'{"id":"floor","seatbid":[],"nbr":8}'


def _worker(port: int) -> None:
    import grpc

    from apps.bidding import grpc_server
    from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc

    reply = bidding_pb2.BidResponseProto(openrtb_json=ANSWER, no_bid=True)

    class Floor(bidding_pb2_grpc.BiddingServiceServicer):
        async def ProcessBid(self, request, context):  # noqa: N802
            return reply

        async def StreamBids(self, request_iterator, context):  # noqa: N802 - the sidecar's reader/writer loop
            while await context.read() is not grpc.aio.EOF:
                await context.write(reply)

    async def serve() -> None:
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", grpc_server.MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", grpc_server.MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1),
        ])
        bidding_pb2_grpc.add_BiddingServiceServicer_to_server(Floor(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"floor worker {os.getpid()} serving on 127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(grace=None)

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(args.port,)) for _ in range(args.workers)]
    for w in workers:
        w.start()
    signal.signal(signal.SIGTERM, lambda *_: [w.terminate() for w in workers])
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
