"""The wallet's use cases: plain Python over the store, the scorer and the token issuer.

No gRPC here: the servicer turns requests into calls of these methods, and every
expected failure is a `WalletError` with a stable code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from common.limits import (
    DEFAULT_PAGE_SIZE,
    IDEMPOTENCY_KEY_RULE,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_PAGE_SIZE,
)
from common.ratelimit import ceil_seconds
from wallet_service import backtests
from wallet_service.auth import (
    TokenIssuer,
    hash_password,
    validate_password,
    validate_username,
    verify_password,
)
from wallet_service.bulk import BatchMode, ItemResult, TransferItem, check_batch, named
from wallet_service.cursors import decode_cursor, encode_cursor
from wallet_service.emails import MAX_EMAIL_LENGTH, normalized_email
from wallet_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    WalletError,
)
from wallet_service.group_commit import MovementWriter
from wallet_service.identity import canonical_if_valid, canonical_username
from wallet_service.ids import uuid7
from wallet_service.ledger import replay_outcome, request_fingerprint
from wallet_service.limits import LoginAttempts, Quota, lockout_key
from wallet_service.models import (
    Decision,
    FraudReason,
    FraudVerdict,
    MovementFeatures,
    MovementOutcome,
    MovementPlan,
    ReviewStatus,
    Role,
    ServiceAccount,
    Transaction,
    TransactionQuery,
    TxStatus,
    TxType,
    User,
    utc_now,
)
from wallet_service.money import CurrencyBook
from wallet_service.scoring import (
    BacktestReport,
    ScoreInput,
    Scorer,
    ScorerUnavailable,
    SnoozeInput,
    SnoozeRefused,
    with_earlier,
)
from wallet_service.service_accounts import ServiceAccounts, scoped_key
from wallet_service.store_contract import WalletStore
from wallet_service.visibility import outcome_for, transaction_for, user_for

log = logging.getLogger(__name__)


class AdminBootstrapRefused(Exception):
    """ADMIN_USERNAME names an account that is not an admin: promoting it would hand its
    existing tokens (and whoever holds its password) admin rights, so the wallet stops."""


MAX_SNOOZE_DAYS = 365
# Not rules of the live set: a block-list entry is removed, not snoozed; "unscored" is
# the wallet's own mark for a movement the fraud service never saw.
UNSNOOZABLE_RULES = frozenset({"block_list", "unscored"})
_CURSOR_PREFIX = "v1:"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class ListFilters:
    limit: int = 0
    cursor: str = ""
    currency: str = ""
    type: str = ""
    since: str = ""
    until: str = ""
    include_deleted: bool = False
    username: str = ""


@dataclass(frozen=True)
class Page:
    transactions: list[Transaction]
    next_cursor: str


class WalletService:
    def __init__(
        self,
        *,
        store: WalletStore,
        writer: MovementWriter,
        currencies: CurrencyBook,
        tokens: TokenIssuer,
        scorer: Scorer,
        fraud_fail_closed: bool,
        login_attempts: LoginAttempts,
        money_quota: Quota,
        reserved_usernames: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.service_accounts = ServiceAccounts(store=store, tokens=tokens)
        self.writer = writer
        self.currencies = currencies
        self.tokens = tokens
        self.scorer = scorer
        self.fraud_fail_closed = fraud_fail_closed
        self.login_attempts = login_attempts
        self.money_quota = money_quota  # per authenticated user: minting tokens gains nothing
        # Canonical names nobody may register (the configured admin's, even before the
        # bootstrap ran, so nobody can claim it first).
        self.reserved_usernames = frozenset(canonical_username(n) for n in reserved_usernames)
        # The most movements one backtest replays (a test may narrow it to reach it cheaply).
        self.backtest_max_movements = backtests.MAX_MOVEMENTS

    # -- identity -----------------------------------------------------------------------

    def register(self, *, username: str, password: str, email: str = "") -> User:
        canonical = validate_username(username)
        validate_password(password)
        stored_email = _valid_email(email)
        if canonical in self.reserved_usernames:
            raise AlreadyExists("username_taken", f"Username {username!r} is taken")
        return self.store.create_user(
            user_id=uuid7(),
            username=username,
            password_hash=hash_password(password),
            role=Role.USER,
            now=utc_now(),
            email=stored_email,
        )

    def bootstrap_admin(self, *, username: str, password: str) -> User:
        """Create the configured admin, or keep the existing one (re-keyed, with its older
        tokens revoked, when the configured password is not its current one). An existing
        non-admin holder of the name is refused: AdminBootstrapRefused."""
        validate_username(username)
        validate_password(password)
        holder = self.store.ensure_admin(
            user_id=uuid7(),
            username=username,
            password_hash=hash_password(password),
            now=utc_now(),
        )
        if holder.role is not Role.ADMIN:
            raise AdminBootstrapRefused(
                f"ADMIN_USERNAME={username!r} names an existing ordinary account "
                f"({holder.username!r}); refusing to promote it: choose another ADMIN_USERNAME"
            )
        if holder.is_deleted or not verify_password(holder.password_hash, password):
            return self.store.reset_admin(user_id=holder.id, password_hash=hash_password(password))
        return holder

    def login(self, *, username: str, password: str) -> tuple[str, int]:
        """Returns (token, seconds until it expires). One message for every failure, so
        the answer does not tell which usernames exist."""
        key = lockout_key(username)
        self._reserve_attempt(key)
        user = self._live_user(username)
        if not verify_password(user.password_hash if user else None, password or ""):
            raise Unauthenticated("invalid_credentials", "Invalid username or password")
        assert user is not None
        self.login_attempts.clear(key)
        return self._token(user.id, user.credentials_version)

    def change_password(
        self, caller: User, *, current_password: str, new_password: str
    ) -> tuple[str, int]:
        """Re-key the caller and revoke every older token; returns a fresh token. A wrong
        current password counts toward the same lockout as a failed login."""
        validate_password(new_password)
        key = lockout_key(caller.username)
        self._reserve_attempt(key)
        if not verify_password(caller.password_hash, current_password or ""):
            raise Unauthenticated("invalid_credentials", "Current password is incorrect")
        self.login_attempts.clear(key)
        version = self.store.change_password(
            user_id=caller.id,
            password_hash=hash_password(new_password),
            expected_version=caller.credentials_version,
        )
        if version is None:  # revoked (or changed) by a concurrent call meanwhile
            raise Unauthenticated("token_revoked", "Token has been revoked; log in again")
        return self._token(caller.id, version)

    def logout_all(self, caller: User) -> None:
        """Revoke every token of the caller, this one included."""
        self.store.revoke_tokens(user_id=caller.id)

    def set_email(self, caller: User, email: str) -> User:
        """Set the caller's own notification address ("" clears it)."""
        return self.store.set_user_email(user_id=caller.id, email=_valid_email(email))

    def _token(self, user_id: str, credentials_version: int) -> tuple[str, int]:
        token = self.tokens.issue(
            user_id=user_id, credentials_version=credentials_version, now=utc_now()
        )
        return token, self.tokens.ttl_seconds

    def _reserve_attempt(self, key: str) -> None:
        """Reserved before the (slow) hash and counted whatever the outcome, so requests in
        flight together cannot all slip past the limit; a success clears it."""
        wait = self.login_attempts.reserve(key, now=utc_now())
        if wait is not None:
            raise ResourceExhausted(
                "too_many_attempts",
                "Too many failed logins; try again later",
                retry_after_seconds=ceil_seconds(wait),
            )

    def _live_user(self, username: str) -> User | None:
        canonical = canonical_if_valid(username)
        return self.store.get_user_by_username(canonical) if canonical else None

    def authenticate(self, token: str) -> User | ServiceAccount:
        """The live user (or service account) behind a bearer token; role and deletion
        (scopes and disabling) come from the database, and a token issued before the last
        credentials change is revoked."""
        claims = self.tokens.verify(token)
        if claims.is_service:
            return self.service_accounts.authenticate(claims)
        user = self.store.get_user(claims.user_id) if _is_id(claims.user_id) else None
        if user is None or user.is_deleted:
            raise Unauthenticated("token_invalid", "Token is invalid")
        if claims.credentials_version != user.credentials_version:
            raise Unauthenticated("token_revoked", "Token has been revoked; log in again")
        return user

    def authenticate_user(self, token: str) -> User:
        """`authenticate` for a caller that must be a user (tools and the bench)."""
        caller = self.authenticate(token)
        if not isinstance(caller, User):
            raise PermissionDenied("user_token_required", "This needs a user's token")
        return caller

    def delete_account(self, caller: User) -> User:
        deleted = self.store.soft_delete_user(
            user_id=caller.id, now=utc_now(), require_zero_balances=True
        )
        return user_for(caller, deleted)

    # -- balances -----------------------------------------------------------------------

    def balance(self, caller: User, currency: str) -> int:
        return self.store.balance(
            user_id=caller.id, currency=self.currencies.check_currency(currency or "USD")
        )

    def balances(self, caller: User) -> list[tuple[str, int]]:
        return self.store.balances(user_id=caller.id)

    # -- money movements ----------------------------------------------------------------

    # `acting`: the service account moving the user's money on their behalf (None: the user
    # themself). Everything else (scoring, freezes, limits) is the same either way.

    def deposit(
        self,
        caller: User,
        *,
        amount: str,
        currency: str,
        key: str,
        acting: ServiceAccount | None = None,
    ) -> MovementOutcome:
        return self._move(
            caller, TxType.DEPOSIT, amount, currency, key, to_username=None, acting=acting
        )

    def withdraw(
        self,
        caller: User,
        *,
        amount: str,
        currency: str,
        key: str,
        acting: ServiceAccount | None = None,
    ) -> MovementOutcome:
        return self._move(
            caller, TxType.WITHDRAWAL, amount, currency, key, to_username=None, acting=acting
        )

    def transfer(
        self,
        caller: User,
        *,
        to_username: str,
        amount: str,
        currency: str,
        key: str,
        acting: ServiceAccount | None = None,
    ) -> MovementOutcome:
        return self._move(
            caller, TxType.TRANSFER, amount, currency, key, to_username=to_username, acting=acting
        )

    def _recipient(self, caller: User, to_username: str) -> User:
        if not to_username:
            raise InvalidArgument("invalid_recipient", "to_username is required")
        recipient = self._live_user(to_username)
        if recipient is not None and recipient.id == caller.id:  # `ALICE` is alice too
            raise InvalidArgument("self_transfer", "Cannot transfer to yourself")
        if recipient is None:
            raise NotFound("recipient_not_found", "Recipient not found")
        return recipient

    # -- bulk transfers -----------------------------------------------------------------

    def create_transfers(
        self, caller: User, *, items: Sequence[TransferItem], mode: BatchMode
    ) -> list[ItemResult]:
        """Up to MAX_BATCH_ITEMS transfers of the caller, each with its own key: per item
        its outcome or the WalletError Transfer would have raised (INDEPENDENT), or all of
        them committed together, else the first failing item's error, named, and nothing
        moved (ATOMIC). Each key is answered first (a retried batch replays every item);
        the rest is scored by one ScoreBatch in one sender turn, item k counting items
        0..k-1, and written in one database transaction. The money rate limit counts the
        call once (it bounds requests; the volume is bounded by the item cap and by the
        fraud rules, which see every item)."""
        check_batch(items)
        for item in items:
            _check_idempotency_key(item.key)
        results: list[ItemResult | None] = [None] * len(items)
        prior = self.store.find_by_idempotency_keys(
            initiated_by=caller.id, keys=[item.key for item in items]
        )
        for index, item in enumerate(items):
            if item.key in prior:
                results[index] = self._item_replay(caller, prior[item.key], item)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            if caller.is_frozen:
                raise FailedPrecondition(
                    "account_frozen",
                    "The account is frozen: it can neither send nor receive money",
                )
            self._check_money_quota(caller)
        _fail_atomic(results, mode)
        requests = self._item_requests(caller, items, todo, results)
        _fail_atomic(results, mode)
        if requests:
            with self.store.sender_turn(caller.id):
                self._commit_items(caller, requests, results, mode)
        return [r for r in results if r is not None]

    def _item_replay(self, caller: User, existing: Transaction, item: TransferItem) -> ItemResult:
        try:
            replay = self._replay_of(
                caller, existing, TxType.TRANSFER, item.amount, item.currency, item.to_username
            )
            if replay is None:  # an unreadable amount: what validation says about it
                self.currencies.parse_amount(item.amount, item.currency)
                raise AssertionError("unreachable: requested_minor and parse_amount disagree")
        except WalletError as error:
            return error
        return _item(caller, replay)

    def _item_requests(
        self,
        caller: User,
        items: Sequence[TransferItem],
        todo: Sequence[int],
        results: list[ItemResult | None],
    ) -> list[_ItemRequest]:
        """The items that passed their own checks; one that did not gets its error in
        `results`. Each recipient name is looked up once per call."""
        found: dict[str, User | WalletError] = {}
        requests = []
        for index in todo:
            item = items[index]
            try:
                name = item.to_username
                if name not in found:
                    try:
                        found[name] = self._recipient(caller, name)
                    except WalletError as error:
                        found[name] = error
                recipient = found[name]
                if isinstance(recipient, WalletError):
                    raise recipient
                amount = self.currencies.parse_amount(item.amount, item.currency)
            except WalletError as error:
                results[index] = error
                continue
            fingerprint = request_fingerprint(
                tx_type=TxType.TRANSFER,
                currency=item.currency,
                amount_minor=amount,
                counterparty=recipient.id,
            )
            requests.append(
                _ItemRequest(index, recipient, amount, item.currency, item.key, fingerprint)
            )
        return requests

    def _commit_items(
        self,
        caller: User,
        requests: Sequence[_ItemRequest],
        results: list[ItemResult | None],
        mode: BatchMode,
    ) -> None:
        """Inside the caller's turn: features per currency, read once and folded item by
        item (item k counts items 0..k-1), one ScoreBatch, one write transaction."""
        now = utc_now()
        # Per currency and recipient: the to-counterparty features are the recipient's.
        base: dict[tuple[str, str], MovementFeatures] = {}
        earlier: dict[str, list[tuple[int, str | None]]] = {}
        movements = []
        for r in requests:
            read = (r.currency, r.recipient.id)
            if read not in base:
                base[read] = self.store.movement_features(
                    user_id=caller.id,
                    currency=r.currency,
                    debit_user_id=caller.id,
                    now=now,
                    counterparty_user_id=r.recipient.id,
                )
            done = earlier.setdefault(r.currency, [])
            features = with_earlier(base[read], done, outgoing=True, counterparty=r.recipient.id)
            movements.append(
                self._score_input(
                    caller, TxType.TRANSFER, r.amount, r.currency, r.recipient, now, features
                )
            )
            done.append((r.amount, r.recipient.id))
        plans = [
            self._plan(
                caller,
                TxType.TRANSFER,
                r.amount,
                r.currency,
                r.key,
                r.fingerprint,
                r.recipient,
                verdict,
                now,
                movement.features,
            )
            for r, movement, verdict in zip(
                requests, movements, self._verdicts(movements), strict=True
            )
        ]
        if mode is BatchMode.ATOMIC:
            for r, plan in zip(requests, plans, strict=True):
                if plan.rejected:
                    raise named(_blocked(None), r.index)
        written = self.store.apply_movements(plans, all_or_nothing=mode is BatchMode.ATOMIC)
        for r, result in zip(requests, written, strict=True):
            results[r.index] = result if isinstance(result, WalletError) else _item(caller, result)
        _fail_atomic(results, mode)

    def _move(
        self,
        caller: User,
        tx_type: TxType,
        amount_text: str,
        currency: str,
        key: str,
        *,
        to_username: str | None,
        acting: ServiceAccount | None = None,
    ) -> MovementOutcome:
        _check_idempotency_key(key)
        if acting is not None:  # the service's keys never meet the user's own
            key = scoped_key(acting, key)
        # A retry is answered before any other lookup or check: its own success may have
        # made them fail since (recipient deleted, currency dropped, account frozen, ...).
        replay = self._replay_movement(caller, key, tx_type, amount_text, currency, to_username)
        if replay is not None:
            return replay
        recipient = self._recipient(caller, to_username or "") if to_username is not None else None
        amount = self.currencies.parse_amount(amount_text, currency)
        if caller.is_frozen:  # decided again under lock by the ledger; this spares the scoring
            raise FailedPrecondition(
                "account_frozen", "The account is frozen: it can neither send nor receive money"
            )
        fingerprint = request_fingerprint(
            tx_type=tx_type,
            currency=currency,
            amount_minor=amount,
            counterparty=recipient.id if recipient else None,
        )
        self._check_money_quota(caller)
        # The sender's turn spans features, score and commit, so every earlier movement of
        # this sender is in the features: a burst scores as the same movements in sequence.
        # (A same-key call racing this one is replayed by the writer; no second probe.)
        with self.store.sender_turn(caller.id):
            plan = self._scored_plan(caller, tx_type, amount, currency, key, fingerprint, recipient)
            if acting is not None:
                plan = replace(plan, initiated_by_service=acting.id)
            return _settled(caller, self.writer.apply(plan))

    def _scored_plan(
        self,
        caller: User,
        tx_type: TxType,
        amount: int,
        currency: str,
        key: str,
        fingerprint: str,
        recipient: User | None,
    ) -> MovementPlan:
        debit = None if tx_type is TxType.DEPOSIT else caller.id
        now = utc_now()  # taken in the turn, so it is after every earlier movement's time
        features = self.store.movement_features(
            user_id=caller.id,
            currency=currency,
            debit_user_id=debit,
            now=now,
            counterparty_user_id=recipient.id if recipient else None,
        )
        movement = self._score_input(caller, tx_type, amount, currency, recipient, now, features)
        verdict = self._verdicts([movement])[0]
        return self._plan(
            caller, tx_type, amount, currency, key, fingerprint, recipient, verdict, now, features
        )

    def _plan(
        self,
        caller: User,
        tx_type: TxType,
        amount: int,
        currency: str,
        key: str,
        fingerprint: str,
        recipient: User | None,
        verdict: FraudVerdict,
        now: datetime,
        features: MovementFeatures,
    ) -> MovementPlan:
        debit = None if tx_type is TxType.DEPOSIT else caller.id
        credit = caller.id if tx_type is TxType.DEPOSIT else (recipient.id if recipient else None)
        return MovementPlan(
            tx_id=uuid7(),
            type=tx_type,
            currency=currency,
            amount_minor=amount,
            debit_user_id=debit,
            credit_user_id=credit,
            debit_username=caller.username if debit else None,
            credit_username=(recipient.username if recipient else caller.username)
            if credit
            else None,
            initiated_by=caller.id,
            idempotency_key=key or None,
            request_fingerprint=fingerprint,
            verdict=verdict,
            created_at=now,
            report_balance_of=caller.id,
            features=features,
        )

    def _check_money_quota(self, caller: User) -> None:
        """After the replay lookup: a retry gets its original answer, never a 429."""
        self.money_quota.check(f"money:user:{caller.id}")

    def _replay_movement(
        self,
        caller: User,
        key: str,
        tx_type: TxType,
        amount_text: str,
        currency: str,
        to_username: str | None,
    ) -> MovementOutcome | None:
        """The stored answer when `key` was used before (or the reuse error); None for a
        new key, or a request whose amount cannot be read (validation answers that)."""
        existing = (
            self.store.find_by_idempotency_key(initiated_by=caller.id, key=key) if key else None
        )
        if existing is None:
            return None
        return self._replay_of(caller, existing, tx_type, amount_text, currency, to_username)

    def _replay_of(
        self,
        caller: User,
        existing: Transaction,
        tx_type: TxType,
        amount_text: str,
        currency: str,
        to_username: str | None,
    ) -> MovementOutcome | None:
        """The stored answer of `existing` for this request (or the reuse error); None
        when the request's amount cannot be read (validation answers that)."""
        amount = self.currencies.requested_minor(amount_text, currency)
        if amount is None:
            return None
        counterparty = None
        if to_username is not None:
            # The recipient may be deleted since: compare the names as identities.
            if canonical_username(to_username) == canonical_username(existing.to_username or ""):
                counterparty = existing.to_user_id
            else:
                named = self._live_user(to_username)
                counterparty = named.id if named else to_username
        fingerprint = request_fingerprint(
            tx_type=tx_type, currency=currency, amount_minor=amount, counterparty=counterparty
        )
        return _settled(caller, replay_outcome(existing, fingerprint))

    def _score_input(
        self,
        caller: User,
        tx_type: TxType,
        amount: int,
        currency: str,
        recipient: User | None,
        now: datetime,
        features: MovementFeatures,
    ) -> ScoreInput:
        return ScoreInput(
            type=tx_type,
            amount_minor=amount,
            currency=currency,
            currency_exponent=self.currencies.exponent(currency),
            user_id=caller.id,
            counterparty_id=recipient.id if recipient else None,
            occurred_at=now,
            features=features,
            username=canonical_username(caller.username),
            counterparty_username=canonical_username(recipient.username) if recipient else "",
        )

    def _verdicts(self, movements: Sequence[ScoreInput]) -> list[FraudVerdict]:
        """One verdict per movement (one Score call, or one ScoreBatch for several); with
        the scorer down: UNSCORED verdicts (fail open) or Unavailable (fail closed)."""
        try:
            if len(movements) == 1:
                return [self.scorer.score(movements[0])]
            return self.scorer.score_batch(movements)
        except ScorerUnavailable as exc:
            if self.fraud_fail_closed:
                raise Unavailable(
                    "fraud_unavailable",
                    "Fraud scoring is unavailable, so nothing was moved; retry later",
                ) from exc
            log.warning("fraud scoring unavailable; completing unscored", exc_info=exc)
            reason = FraudReason("unscored", "Fraud service unavailable; needs manual review")
            return [FraudVerdict(0, Decision.UNSCORED, (reason,), "") for _ in movements]

    # -- listings -----------------------------------------------------------------------

    def list_transactions(self, caller: User, filters: ListFilters) -> Page:
        scope: str | None = caller.id
        if filters.username or filters.include_deleted:
            _require_admin(caller)
        if filters.username:
            target = self._live_user(filters.username)
            if target is None:
                raise NotFound("user_not_found", "User not found")
            scope = target.id
        return self._page(caller, self._query(filters, user_id=scope))

    def list_flagged(
        self, caller: User, *, limit: int, cursor: str, review_status: str, include_deleted: bool
    ) -> Page:
        _require_admin(caller)
        status = _review_status(review_status) if review_status else None
        base = self._query(
            ListFilters(limit=limit, cursor=cursor, include_deleted=include_deleted), user_id=None
        )
        return self._page(caller, replace(base, flagged_only=True, review_status=status))

    def _query(self, filters: ListFilters, *, user_id: str | None) -> TransactionQuery:
        if filters.limit < 0:
            raise InvalidArgument("invalid_limit", "limit must not be negative")
        limit = min(filters.limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        tx_type = None
        if filters.type:
            try:
                tx_type = TxType(filters.type)
            except ValueError as exc:
                raise InvalidArgument(
                    "invalid_type", f"Unknown transaction type {filters.type[:20]!r}"
                ) from exc
        return TransactionQuery(
            user_id=user_id,
            limit=limit,
            after_id=decode_cursor(_CURSOR_PREFIX, filters.cursor),
            currency=self.currencies.check_currency(filters.currency) if filters.currency else None,
            type=tx_type,
            since=_parse_time(filters.since, "since"),
            until=_parse_time(filters.until, "until"),
            include_deleted=filters.include_deleted,
        )

    def _page(self, caller: User, query: TransactionQuery) -> Page:
        # Ask for one more row than the page holds to learn whether another page exists.
        rows = self.store.list_transactions(replace(query, limit=query.limit + 1))
        page, more = rows[: query.limit], len(rows) > query.limit
        shown = [transaction_for(caller, tx) for tx in page]
        return Page(shown, encode_cursor(_CURSOR_PREFIX, page[-1].id) if more and page else "")

    def get_transaction(self, caller: User, tx_id: str) -> Transaction:
        """Another user's transaction is NotFound, never PermissionDenied: ids can't be probed."""
        found = self.store.get_transaction(tx_id) if _is_id(tx_id) else None
        visible = found is not None and (
            caller.role is Role.ADMIN or (found.involves(caller.id) and found.deleted_at is None)
        )
        if not visible or found is None:
            raise NotFound("transaction_not_found", "Transaction not found")
        return transaction_for(caller, found)

    # -- administration -----------------------------------------------------------------

    def review(
        self,
        caller: User,
        *,
        tx_id: str,
        resolution: str,
        note: str,
        freeze: bool = False,
        snooze_days: int = 0,
    ) -> Transaction:
        """Resolve a flagged transaction; with `freeze` (confirmed_fraud only) its initiator
        is frozen in the same database transaction as the review. With `snooze_days`
        (cleared only) the rules that hit are snoozed for its initiator first, in the fraud
        service: a snooze is an idempotent upsert there, so if the review then fails (say a
        concurrent review won) a retry is safe, whereas a review recorded without its
        snooze could not be retried."""
        _require_admin(caller)
        status = _review_status(resolution)
        if snooze_days and status is not ReviewStatus.CLEARED:
            raise InvalidArgument(
                "snooze_requires_cleared", "Only a cleared review can snooze rules"
            )
        if not 0 <= snooze_days <= MAX_SNOOZE_DAYS:
            raise InvalidArgument(
                "invalid_snooze_days", f"snooze_days must be between 1 and {MAX_SNOOZE_DAYS}"
            )
        if status is ReviewStatus.PENDING:
            raise InvalidArgument(
                "invalid_resolution", "resolution must be cleared or confirmed_fraud"
            )
        if freeze and status is not ReviewStatus.CONFIRMED_FRAUD:
            raise InvalidArgument(
                "freeze_requires_confirmed_fraud", "Only a confirmed_fraud review can freeze"
            )
        if not _is_id(tx_id):
            raise NotFound("transaction_not_found", "Flagged transaction not found")
        note = _note(note)
        freeze_reason = (note or f"confirmed fraud on transaction {tx_id}") if freeze else None
        if snooze_days:
            self._snooze_hits(caller, tx_id=tx_id, days=snooze_days, note=note)
        reviewed = self.store.review_transaction(
            tx_id=tx_id,
            resolution=status,
            reviewer_id=caller.id,
            note=note,
            now=utc_now(),
            freeze_reason=freeze_reason,
        )
        return transaction_for(caller, reviewed)

    def _snooze_hits(self, caller: User, *, tx_id: str, days: int, note: str) -> None:
        found = self.store.get_transaction(tx_id)
        if found is None or not found.flagged or found.review_status is not ReviewStatus.PENDING:
            return  # the review itself refuses it, with its usual error
        initiator = self.store.get_user(found.initiated_by)
        rule_ids = tuple(
            sorted(
                {r.rule_id for r in (found.verdict.reasons if found.verdict else ())}
                - UNSNOOZABLE_RULES
            )
        )
        if initiator is None or not rule_ids:
            raise InvalidArgument(
                "nothing_to_snooze", "This transaction has no rule hit that can be snoozed"
            )
        request = SnoozeInput(
            username=canonical_username(initiator.username),
            rule_ids=rule_ids,
            days=days,
            transaction_id=tx_id,
            note=note,
            actor=caller.username,
        )
        try:
            self.scorer.snooze(request)
        except SnoozeRefused as exc:
            raise InvalidArgument("snooze_refused", str(exc)) from exc
        except ScorerUnavailable as exc:
            raise Unavailable("fraud_unavailable", f"Snooze not recorded: {exc}") from exc

    def freeze_user(self, caller: User, *, username: str, reason: str) -> User:
        """Stop a user sending or receiving money (reads and login still work). Freezing a
        frozen user keeps the first record (who, when, why)."""
        _require_admin(caller)
        if not reason.strip():
            raise InvalidArgument("reason_required", "A reason is required to freeze a user")
        reason = _note(reason)
        target = self._admin_target(caller, username, verb="freeze")
        frozen = self.store.freeze_user(
            user_id=target.id, frozen_by=caller.id, reason=reason, now=utc_now()
        )
        return user_for(caller, frozen)

    def unfreeze_user(self, caller: User, *, username: str) -> User:
        _require_admin(caller)
        target = self._admin_target(caller, username, verb="unfreeze")
        return user_for(caller, self.store.unfreeze_user(user_id=target.id))

    def backtest_rule_set(
        self,
        caller: User,
        *,
        version: int,
        since: str,
        until: str,
        timeout_seconds: float | None,
    ) -> BacktestReport:
        """Admins: `version`'s rules replayed on the movements scored in [since, until)
        (wallet_service.backtests says how it is bounded)."""
        _require_admin(caller)
        start, end = _parse_time(since, "since"), _parse_time(until, "until")
        if start is None or end is None:
            raise InvalidArgument("invalid_time", "since and until are both required")
        return backtests.run_backtest(
            store=self.store,
            scorer=self.scorer,
            exponent=self.currencies.exponent,
            version=version,
            since=start,
            until=end,
            timeout_seconds=timeout_seconds,
            max_movements=self.backtest_max_movements,
        )

    def require_admin(self, caller: User) -> None:
        """For calls the wallet forwards on its admins' behalf (fraud_admin_proxy)."""
        _require_admin(caller)

    def _admin_target(self, caller: User, username: str, *, verb: str) -> User:
        if username == caller.username:
            raise FailedPrecondition(f"cannot_{verb}_self", f"Admins cannot {verb} themselves")
        target = self._live_user(username)
        if target is None:
            raise NotFound("user_not_found", "User not found")
        return target

    def reverse(self, caller: User, *, tx_id: str, reason: str, key: str) -> MovementOutcome:
        _require_admin(caller)
        _check_idempotency_key(key)
        if key:  # a retry is answered before any lookup or check its own success may fail
            existing = self.store.find_by_idempotency_key(initiated_by=caller.id, key=key)
            if existing is not None:
                # A reversal's request is its original's id: the same id is the same request.
                same = (
                    existing.type is TxType.REVERSAL and existing.reverses_transaction_id == tx_id
                )
                asked = existing.request_fingerprint if same else None
                return _settled(caller, replay_outcome(existing, asked))
        original = self.store.get_transaction(tx_id) if _is_id(tx_id) else None
        if original is None:
            raise NotFound("transaction_not_found", "Transaction not found")
        fingerprint = request_fingerprint(
            tx_type=TxType.REVERSAL,
            currency=original.currency,
            amount_minor=original.amount_minor,
            counterparty=original.id,
        )
        self._check_money_quota(caller)
        if original.status is not TxStatus.COMPLETED or original.type is TxType.REVERSAL:
            raise FailedPrecondition(
                "not_reversible",
                "Only a completed deposit, withdrawal or transfer can be reversed",
            )
        if original.reversed_by_transaction_id:
            raise FailedPrecondition("already_reversed", "Transaction was already reversed")
        plan = MovementPlan(
            tx_id=uuid7(),
            type=TxType.REVERSAL,
            currency=original.currency,
            amount_minor=original.amount_minor,
            debit_user_id=original.to_user_id,
            credit_user_id=original.from_user_id,
            debit_username=original.to_username,
            credit_username=original.from_username,
            initiated_by=caller.id,
            idempotency_key=key or None,
            request_fingerprint=fingerprint,
            verdict=None,
            created_at=utc_now(),
            reverses_transaction_id=original.id,
            report_balance_of=original.from_user_id or original.to_user_id,
            note=_note(reason),
        )
        return _settled(caller, self.writer.apply(plan))

    def delete_transaction(self, caller: User, tx_id: str) -> Transaction:
        _require_admin(caller)
        if not _is_id(tx_id):
            raise NotFound("transaction_not_found", "Transaction not found")
        return transaction_for(
            caller, self.store.soft_delete_transaction(tx_id=tx_id, now=utc_now())
        )

    def delete_user(self, caller: User, username: str) -> User:
        _require_admin(caller)
        target = self._live_user(username)
        if target is not None and target.id == caller.id:
            raise FailedPrecondition("cannot_delete_self", "Admins cannot delete themselves")
        if target is None:
            raise NotFound("user_not_found", "User not found")
        deleted = self.store.soft_delete_user(
            user_id=target.id, now=utc_now(), require_zero_balances=False
        )
        return user_for(caller, deleted)


# -- helpers ----------------------------------------------------------------------------------


def _require_admin(caller: User) -> None:
    if caller.role is not Role.ADMIN:
        raise PermissionDenied("admin_required", "Admin role required")


def _settled(caller: User, outcome: MovementOutcome) -> MovementOutcome:
    """A blocked movement (first time or replayed) is an error for the caller; otherwise
    the outcome as the caller may see it."""
    if outcome.transaction.status is TxStatus.REJECTED:
        raise _blocked(outcome.transaction.id)
    return outcome_for(caller, outcome)


def _blocked(tx_id: str | None) -> FailedPrecondition:
    """A movement the fraud rules blocked; `tx_id` of its rejected record when one was
    written (an ATOMIC batch writes none)."""
    details = {"transaction_id": tx_id} if tx_id else {}
    return FailedPrecondition(
        "transaction_blocked", "Transaction blocked by fraud rules; nothing was moved", **details
    )


def _item(caller: User, outcome: MovementOutcome) -> ItemResult:
    """A bulk item's result: its outcome, or the error Transfer would have raised."""
    try:
        return _settled(caller, outcome)
    except WalletError as error:
        return error


def _fail_atomic(results: Sequence[ItemResult | None], mode: BatchMode) -> None:
    """ATOMIC: the first failed item (by index) fails the call, named."""
    if mode is not BatchMode.ATOMIC:
        return
    for index, result in enumerate(results):
        if isinstance(result, WalletError):
            raise named(result, index)


@dataclass(frozen=True)
class _ItemRequest:
    """A bulk item that passed its own checks, ready to be scored."""

    index: int
    recipient: User
    amount: int
    currency: str
    key: str
    fingerprint: str


def _check_idempotency_key(key: str) -> None:
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidArgument("invalid_idempotency_key", IDEMPOTENCY_KEY_RULE)


def _review_status(value: str) -> ReviewStatus:
    try:
        return ReviewStatus(value)
    except ValueError as exc:
        raise InvalidArgument(
            "invalid_review_status", "Expected pending, cleared or confirmed_fraud"
        ) from exc


def _note(note: str) -> str:
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidArgument("note_too_long", f"Note must be at most {MAX_NOTE_LENGTH} characters")
    if any(not ch.isprintable() and ch not in "\n\t" for ch in note):
        raise InvalidArgument("invalid_note", "Note must not contain control characters")
    return note


def _is_id(value: str) -> bool:
    """Our ids are canonical UUID strings; anything else cannot name a row."""
    return bool(_UUID.fullmatch(value or ""))


def _parse_time(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidArgument("invalid_time", f"{name} must be an RFC 3339 time") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _valid_email(email: str) -> str | None:
    """The address to store ("" -> None), or InvalidArgument(invalid_email)."""
    stored = normalized_email(email) if email else None
    if email and stored is None:
        raise InvalidArgument(
            "invalid_email", f"Not a valid email address (at most {MAX_EMAIL_LENGTH} chars)"
        )
    return stored
