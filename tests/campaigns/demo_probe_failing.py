"""A ``demo`` module whose seed() fails: seed_demo must say so and fail, after running the others."""


def seed() -> None:
    raise RuntimeError("demo store unavailable")
