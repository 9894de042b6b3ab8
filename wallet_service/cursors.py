"""Page cursors: the last id a page showed, opaque to clients (URL-safe base64 of a
versioned prefix and the id). Each listing has its own prefix, so a cursor from one
listing is refused by another."""

from __future__ import annotations

import base64
import binascii

from wallet_service.errors import InvalidArgument

MAX_DECODED_LENGTH = 64


def encode_cursor(prefix: str, last_id: str) -> str:
    return base64.urlsafe_b64encode((prefix + last_id).encode()).decode().rstrip("=")


def decode_cursor(prefix: str, cursor: str) -> str | None:
    """The id after which the next page starts; None for the first page (""). A cursor
    that is not one of `prefix`'s is `invalid_cursor`."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("invalid_cursor", "Cursor is invalid") from exc
    if not raw.startswith(prefix) or len(raw) > MAX_DECODED_LENGTH:
        raise InvalidArgument("invalid_cursor", "Cursor is invalid")
    return raw[len(prefix) :]
