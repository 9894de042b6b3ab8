"""What each caller may see of a transaction or a user: the one shaping function per record.

The fraud assessment (score, decision, reasons, rules version) and the review (status,
reviewer, time, note) are for admins only: the reasons quote the other party's balance and
history, and the rest tells a suspect how the rules and the investigation stand. `flagged`
stays visible to the parties, as the REST API has always shown it (it is the only hint a
customer gets that a movement is held for review). A reversal's `note` is the reason given
to the parties and stays visible. Who froze a user and why are admin-only too.
"""

from __future__ import annotations

from dataclasses import replace

from wallet_service.models import MovementOutcome, Role, Transaction, User


def transaction_for(caller: User, tx: Transaction) -> Transaction:
    if caller.role is Role.ADMIN:
        return tx
    return replace(
        tx,
        verdict=None,
        review_status=None,
        reviewed_by=None,
        reviewed_at=None,
        review_note=None,
    )


def outcome_for(caller: User, outcome: MovementOutcome) -> MovementOutcome:
    return replace(outcome, transaction=transaction_for(caller, outcome.transaction))


def user_for(caller: User, user: User) -> User:
    if caller.role is Role.ADMIN:
        return user
    # A user's email is theirs and the admins' alone.
    email = user.email if caller.id == user.id else None
    return replace(user, frozen_by=None, frozen_reason=None, email=email)
