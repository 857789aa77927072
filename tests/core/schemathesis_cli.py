"""Schemathesis's command line with ``ast.parse`` serialised across threads.

CPython 3.11 keeps the AST validator's recursion depth in interpreter-wide state, so two threads
parsing at once can fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905). Hypothesis parses source to describe the lambdas Schemathesis filters with,
and ``--workers 2`` runs two threads: one such run ended in a runtime error instead of a verdict.
"""
import ast
import runpy
import threading

_lock = threading.Lock()
_parse = ast.parse


def _serialised_parse(*args, **kwargs):
    with _lock:
        return _parse(*args, **kwargs)


ast.parse = _serialised_parse

if __name__ == "__main__":
    runpy.run_module("schemathesis.cli", run_name="__main__", alter_sys=True)
