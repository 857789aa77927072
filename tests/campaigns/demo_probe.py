"""A stand-in ``apps.<app>.demo`` module for the seed_demo tests."""
calls: list[str] = []


def seed() -> None:
    calls.append("seeded")
