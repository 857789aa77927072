"""Generate the Python gRPC stubs of ``proto/bidding.proto`` into ``apps/bidding/grpc_gen/``.

The generated files are committed (so no build step is needed to run); a test regenerates them
into a temporary directory and fails if the committed ones differ from the ``.proto``.

    python -m apps.bidding.grpc_codegen            # rewrite apps/bidding/grpc_gen/
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROTO_DIR = ROOT / "proto"
PROTO = PROTO_DIR / "bidding.proto"
OUT_DIR = Path(__file__).resolve().parent / "grpc_gen"


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Run protoc (grpcio-tools) and make the generated import package-relative."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main([
        "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", str(PROTO),
    ])
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    grpc_file = out_dir / "bidding_pb2_grpc.py"
    text = grpc_file.read_text()
    # protoc emits a top-level import ("import bidding_pb2"); the stubs live in a package.
    text = re.sub(r"^import bidding_pb2 as bidding__pb2$", "from . import bidding_pb2 as bidding__pb2", text, flags=re.M)
    grpc_file.write_text(text)
    init = out_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated from proto/bidding.proto by apps.bidding.grpc_codegen - do not edit."""\n')
    return [out_dir / "bidding_pb2.py", grpc_file]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR):
        print(f"wrote {path}")
