"""A user's own notification address: what the wallet accepts. Pure, no I/O.

Deliberately plain ASCII addresses (RFC 5321 sizes: local part up to 64, whole address up
to 254 characters, dot-atom local part, hostname labels): everything a mail server can be
handed without SMTPUTF8, and nothing that can smuggle a header (no spaces, quotes, commas,
control characters or line breaks).
"""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"(?P<local>{_LOCAL})@(?P<domain>{_LABEL}(?:\.{_LABEL})*)")


def normalized_email(text: str) -> str | None:
    """The address to store (domain lower-cased), or None when `text` is not one."""
    if len(text) > MAX_EMAIL_LENGTH:
        return None
    match = _EMAIL.fullmatch(text)
    if match is None or len(match["local"]) > 64:
        return None
    return f"{match['local']}@{match['domain'].lower()}"
