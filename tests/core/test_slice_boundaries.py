"""Rules of the code base that a reader relies on, checked over ``apps/`` (docs: /work/shared/CONVENTIONS.md 1, 3).

* A slice reads another slice's data through its selectors and writes through its services, never its models
  (an import under ``if TYPE_CHECKING:`` for a type hint is fine; ForeignKeys name their target as a string).
* Every ``actor`` parameter is typed: who acts is part of a service's contract.
* No slice probes for another one with ``importlib.util.find_spec`` (build-order scaffolding); only the
  inference providers look for optional third-party SDKs that way.
"""
from __future__ import annotations

import ast
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "apps"


def _modules():
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" not in path.parts and "grpc_gen" not in path.parts:
            yield path, ast.parse(path.read_text(), filename=str(path))


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(APPS.parent)}:{node.lineno}"


def test_no_slice_imports_another_slices_models():
    offenders = []
    for path, tree in _modules():
        slice_name = path.relative_to(APPS).parts[0]
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("apps."):
                parts = node.module.split(".")
                models = parts[2:3] == ["models"] or (len(parts) == 2 and any(a.name == "models" for a in node.names))
                if models and parts[1] != slice_name:
                    offenders.append(f"{_where(path, node)} imports {node.module}")
    assert offenders == []


def test_every_actor_parameter_is_typed():
    offenders = [
        f"{_where(path, node)} {node.name}(actor)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
        if arg.arg == "actor" and arg.annotation is None
    ]
    assert offenders == []


def test_only_the_inference_providers_use_find_spec():
    users = {
        str(path.relative_to(APPS.parent))
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "find_spec"
    }
    assert users == {"apps/inference/providers.py"}
