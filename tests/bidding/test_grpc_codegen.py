"""The committed gRPC stubs (apps/bidding/grpc_gen) are exactly what proto/bidding.proto generates."""
from apps.bidding import grpc_codegen


def test_committed_stubs_match_the_proto(tmp_path):
    generated = grpc_codegen.generate(tmp_path)
    for path in generated:
        committed = grpc_codegen.OUT_DIR / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `python -m apps.bidding.grpc_codegen`")
