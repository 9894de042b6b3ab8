"""Bulk transfers: the request's shape and its checks, pure (no grpc, no SQL).

The use case itself is `WalletService.create_transfers`; this module holds what it checks
before anything moves, and how an ATOMIC batch names the item that failed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from wallet_service.errors import InvalidArgument, WalletError
from wallet_service.models import MovementOutcome

MAX_BATCH_ITEMS = 1000

ItemResult = MovementOutcome | WalletError


class BatchMode(StrEnum):
    INDEPENDENT = "independent"  # each item succeeds or fails alone
    ATOMIC = "atomic"  # all items or none


@dataclass(frozen=True)
class TransferItem:
    to_username: str
    amount: str
    currency: str
    key: str


def check_batch(items: Sequence[TransferItem]) -> None:
    """The checks of the whole call, before any lookup: InvalidArgument when the batch is
    empty, too large, or an item's idempotency key is missing or repeated (each item is
    retried by its key, so a batch without keys could not be retried safely)."""
    if not items:
        raise InvalidArgument("empty_batch", "A batch needs at least one item")
    if len(items) > MAX_BATCH_ITEMS:
        raise InvalidArgument(
            "batch_too_large", f"A batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}"
        )
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not item.key:
            raise named(
                InvalidArgument("idempotency_key_required", "Each item needs an idempotency_key"),
                index,
            )
        if item.key in seen:
            raise named(
                InvalidArgument(
                    "duplicate_idempotency_key",
                    f"idempotency_key repeats items[{seen[item.key]}]",
                ),
                index,
            )
        seen[item.key] = index


def named(error: WalletError, index: int) -> WalletError:
    """The same error, naming the item: `items[i]: ` in the message, `item_index` in the
    details (ErrorInfo metadata on the wire)."""
    copy = type(error).__new__(type(error))
    WalletError.__init__(
        copy,
        error.code,
        f"items[{index}]: {error.message}",
        **{**error.details, "item_index": str(index)},
    )
    copy.retry_after_seconds = error.retry_after_seconds
    return copy
