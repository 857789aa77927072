"""Stands in for ``apps.bidding.services`` in tests that check *when* the snapshot refresh is
announced (the campaigns slice must call it after commit, and only for changes that affect bidding)."""
calls: list[str] = []


def offer_snapshot_refresh() -> None:
    calls.append("refresh")
