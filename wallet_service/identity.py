"""What makes two usernames the same identity.

A username is displayed as it was registered (`Alice`) but compared in its canonical
form: Unicode NFKC (compatibility forms such as fullwidth letters, U+FF41 for `a`, or
the U+FB01 `fi` ligature become their plain letters) then case folding (`ALICE`,
`Straße` -> `alice`, `strasse`).
The canonical form is what the database keeps unique and what every lookup uses, so
`bob`, `Bob` and a fullwidth `BOB` can never be three accounts.

This is the one definition; migration 0006 backfills the column with it. Changing it
would need a new migration that recomputes the column and reports the collisions.
"""

from __future__ import annotations

import re
import unicodedata

from common.limits import MAX_USERNAME_INPUT_LENGTH

# Checked on the canonical form: plain ASCII only, so two different identities can never
# look alike (a Cyrillic `a`, U+0430, stays Cyrillic under NFKC and is refused).
CANONICAL_PATTERN = re.compile(r"[a-z0-9_.-]{3,32}")


def canonical_username(username: str) -> str:
    """NFKC, case fold, NFKC again (folding can leave text that NFKC changes further, so
    the result is stable: canonical_username(canonical_username(x)) == canonical_username(x))."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    return unicodedata.normalize("NFKC", folded)


def canonical_if_valid(username: str) -> str | None:
    """The canonical form of a name that may exist, or None for one that cannot."""
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME_INPUT_LENGTH:
        return None
    canonical = canonical_username(username)
    return canonical if CANONICAL_PATTERN.fullmatch(canonical) else None


class UsernameCollisionError(RuntimeError):
    """Existing users whose names are one identity (migration 0006 refuses to merge them)."""
