"""The API contract's size limits: one definition for the wallet, which enforces them, and
the gateway, which checks the same numbers before a call and advertises them in its OpenAPI
document. Plain constants only, so either side imports this without pulling in the other's
dependencies (no grpc, no web framework, no SQL).
"""

from __future__ import annotations

# Transaction lists: the page size when none is asked for, and the most one page holds.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# Idempotency keys are stored with their transaction (a VARCHAR of this length).
MAX_IDEMPOTENCY_KEY_LENGTH = 128
IDEMPOTENCY_KEY_RULE = (
    f"Idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters"
)

# Free-text notes an admin writes: a review note, a reversal or freeze reason.
MAX_NOTE_LENGTH = 1000

# A username as typed, before normalisation (NFKC can expand one code point to 18, so this
# bounds the work on hostile input). No longer name can name a user.
MAX_USERNAME_INPUT_LENGTH = 64
