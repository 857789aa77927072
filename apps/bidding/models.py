"""The bidding slice's one table: the ledger that makes the spend flush exactly-once."""
from django.db import models


class SpendFlush(models.Model):
    """One batch of win spend moved from Redis to ``Campaign.spent``.

    The flush claims a campaign's pending spend in Redis under a fresh ``batch_id``, then adds it
    to the campaign and writes this row in the same transaction. A retry after a crash finds the
    row and does not add the amount again.
    """

    batch_id = models.CharField(max_length=32, unique=True)
    # A plain id, not a foreign key: the campaigns slice is reached through its services only.
    campaign_id = models.BigIntegerField(db_index=True)
    amount_micros = models.BigIntegerField(help_text="Micro-dollars added to the campaign's spend")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}: +{self.amount_micros / 1_000_000:.6f} ({self.batch_id})"
