"""Registers every ``vsml_bench/...`` environment ID with Gymnasium (called on ``import vsml_bench``)."""


def register_envs() -> None:
    """Register all IDs; idempotent."""
