"""Row mapping: database rows <-> the plain records of wallet_service.models."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import Row

from common.records import build
from wallet_service.identity import canonical_username
from wallet_service.models import (
    Decision,
    FraudReason,
    FraudVerdict,
    MovementFeatures,
    ReviewStatus,
    Role,
    Transaction,
    TxStatus,
    TxType,
    User,
    as_utc,
)


def user_from_row(row: Row[Any]) -> User:
    return build(
        User,
        row,
        role=Role(row.role),
        created_at=as_utc(row.created_at),
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        credentials_version=int(row.credentials_version),
        frozen_at=as_utc(row.frozen_at) if row.frozen_at else None,
    )


def new_user_row(user: User) -> dict[str, Any]:
    """The `users` row that inserts the new `user` (never frozen, no credentials change)."""
    return {
        "email": user.email,
        "id": user.id,
        "username": user.username,
        "username_canonical": canonical_username(user.username),
        "password_hash": user.password_hash,
        "role": user.role.value,
        "created_at": user.created_at,
    }


def transaction_from_row(row: Row[Any]) -> Transaction:
    """A row of statements.TRANSACTION_SELECT as a Transaction."""
    verdict = None
    if row.fraud_decision is not None:
        reasons = tuple(
            FraudReason(r["rule_id"], r["description"])
            for r in json.loads(row.fraud_reasons or "[]")
        )
        verdict = FraudVerdict(
            score=int(row.fraud_score or 0),
            decision=Decision(row.fraud_decision),
            reasons=reasons,
            rules_version=row.fraud_rules_version or "",
        )
    return build(
        Transaction,
        row,
        type=TxType(row.type),
        status=TxStatus(row.status),
        amount_minor=int(row.amount_minor),
        created_at=as_utc(row.created_at),
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        verdict=verdict,
        flagged=bool(row.flagged),
        review_status=ReviewStatus(row.review_status) if row.review_status else None,
        reviewed_at=as_utc(row.reviewed_at) if row.reviewed_at else None,
        reversed_by_transaction_id=row.reversed_by_id,
    )


def features_json(features: MovementFeatures | None) -> str | None:
    return json.dumps(dataclasses.asdict(features)) if features is not None else None


def features_from_json(text: str) -> MovementFeatures:
    raw = json.loads(text)
    raw["recent_day_amounts_minor"] = tuple(raw["recent_day_amounts_minor"])
    return MovementFeatures(**raw)


def transaction_row(
    tx: Transaction,
    from_id: int | None,
    to_id: int | None,
    features: MovementFeatures | None = None,
) -> dict[str, Any]:
    """The `transactions` row that records `tx` between the accounts `from_id`, `to_id`,
    with the fraud `features` it was scored with."""
    verdict = tx.verdict
    return {
        "fraud_features": features_json(features),
        "id": tx.id,
        "type": tx.type.value,
        "status": tx.status.value,
        "currency": tx.currency,
        "amount_minor": tx.amount_minor,
        "from_account_id": from_id,
        "to_account_id": to_id,
        "initiated_by": tx.initiated_by,
        "idempotency_key": tx.idempotency_key,
        "request_fingerprint": tx.request_fingerprint,
        "created_at": tx.created_at,
        "flagged": tx.flagged,
        "review_status": tx.review_status.value if tx.review_status else None,
        "reverses_transaction_id": tx.reverses_transaction_id,
        "initiator_balance_after_minor": tx.initiator_balance_after_minor,
        "note": tx.note,
        "initiated_by_service": tx.initiated_by_service,
        "fraud_score": verdict.score if verdict else None,
        "fraud_decision": verdict.decision.value if verdict else None,
        "fraud_reasons": json.dumps(
            [{"rule_id": r.rule_id, "description": r.description} for r in verdict.reasons]
        )
        if verdict
        else None,
        "fraud_rules_version": verdict.rules_version if verdict else None,
    }
