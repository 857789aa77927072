"""Shared test plumbing: free ports (``ports``), processes started and stopped with readiness and their
log in the failure message (``processes``), and waiting on a condition instead of sleeping (``wait``).

``tests/support`` is the only place in ``tests/`` that calls ``time.sleep`` or ``asyncio.sleep``."""
