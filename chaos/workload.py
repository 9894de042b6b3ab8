"""The bank workload: users funded by deposits, then concurrent clients doing random
transfers (both directions between the same pairs), withdrawals and deposits.

Every operation carries an idempotency key. A careful client retries with the same key
on UNAVAILABLE, DEADLINE_EXCEEDED, connection errors and INTERNAL (a server fault whose
outcome is unknown; safe to retry because of the key) until it gets a definitive answer
or its retry budget runs out; then the outcome stays *unknown*.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import grpc
from wallet.v1 import wallet_pb2, wallet_pb2_grpc

from wallet_client.errors import error_reason

PASSWORD = "chaos-password-123"
CURRENCIES: dict[str, int] = {"USD": 2, "EUR": 2, "JPY": 0}
FUNDING: dict[str, str] = {"USD": "150.00", "EUR": "150.00", "JPY": "15000"}
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass
class Op:
    """One logical operation as the client saw it."""

    seq: int
    kind: str  # deposit | withdrawal | transfer
    username: str
    to_username: str
    amount: str
    currency: str
    key: str
    attempts: int = 0
    outcome: str = "pending"  # acked | failed | unknown
    tx_id: str = ""
    tx_ids_seen: set[str] = field(default_factory=set)
    replayed: bool = False
    ambiguous_attempts: int = 0  # attempts whose outcome the client could not know
    codes: list[str] = field(default_factory=list)
    final_code: str = ""
    final_reason: str = ""


@dataclass(frozen=True)
class Progress:
    """Running event counts, so a driver can wait for *events* instead of seconds."""

    acked: int = 0
    failed_attempts: int = 0  # attempts that failed retryably (the client retries them)


@dataclass
class Client:
    username: str
    user_id: str
    metadata: tuple[tuple[str, str], ...]


class Replicas:
    """A channel per wallet replica; each attempt goes to a random one."""

    def __init__(self, addrs: list[str]) -> None:
        self.addrs = addrs
        self.channels = [grpc.insecure_channel(a, options=CHANNEL_OPTIONS) for a in addrs]
        self.stubs = [wallet_pb2_grpc.WalletServiceStub(c) for c in self.channels]

    def pick(self, rng: random.Random) -> wallet_pb2_grpc.WalletServiceStub:
        return rng.choice(self.stubs)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


class Workload:
    def __init__(
        self,
        replicas: Replicas,
        *,
        seed: int,
        users: int,
        clients: int,
        attempt_timeout: float = 3.0,
        retry_budget: float = 90.0,
    ) -> None:
        self.replicas = replicas
        self.seed = seed
        self.n_users = users
        self.n_clients = clients
        self.attempt_timeout = attempt_timeout
        self.retry_budget = retry_budget
        self.users: list[Client] = []
        self.ops: list[Op] = []
        self._ops_lock = threading.Lock()
        self._seq = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.codes: Counter[str] = Counter()
        self._progress = Progress()
        self._progress_changed = threading.Condition()

    # -- setup -------------------------------------------------------------------------

    def setup(self) -> None:
        """Register and log in the users, then fund each of them by deposits."""
        rng = random.Random(self.seed)
        stub = self.replicas.stubs[0]
        for i in range(self.n_users):
            name = f"chaos_{self.seed}_{i}_{rng.randrange(16**6):06x}"
            reply = _unary(
                stub.Register, wallet_pb2.RegisterRequest(username=name, password=PASSWORD)
            )
            token = _unary(
                stub.Login, wallet_pb2.LoginRequest(username=name, password=PASSWORD)
            ).access_token
            self.users.append(Client(name, reply.user.id, (("authorization", f"Bearer {token}"),)))
        for client in self.users:
            for currency, amount in FUNDING.items():
                op = self._new_op("deposit", client, "", amount, currency, "fund")
                self._execute(op, client, rng)
                if op.outcome != "acked":
                    raise RuntimeError(f"funding deposit failed: {op}")

    # -- running -----------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.n_clients):
            thread = threading.Thread(target=self._client_loop, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float) -> None:
        """No new operations; let the current ones finish their retries."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _client_loop(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index + 1)
        while not self._stop.is_set():
            index_of = rng.randrange(len(self.users))
            client = self.users[index_of]
            roll = rng.random()
            currency = rng.choice(list(CURRENCIES))
            if roll < 0.6:
                # A small set of hot pairs, in both directions, so opposite transfers collide.
                step = rng.choice((-2, -1, 1, 2))
                other = self.users[(index_of + step) % len(self.users)]
                op = self._new_op(
                    "transfer", client, other.username, _amount(rng, currency, 60), currency, "t"
                )
            elif roll < 0.8:
                op = self._new_op(
                    "withdrawal", client, "", _amount(rng, currency, 40), currency, "w"
                )
            else:
                op = self._new_op("deposit", client, "", _amount(rng, currency, 50), currency, "d")
            self._execute(op, client, rng)

    def _new_op(
        self, kind: str, client: Client, to: str, amount: str, currency: str, tag: str
    ) -> Op:
        with self._ops_lock:
            self._seq += 1
            op = Op(
                self._seq,
                kind,
                client.username,
                to,
                amount,
                currency,
                f"chaos-{self.seed}-{tag}-{self._seq}",
            )
            self.ops.append(op)
        return op

    def _execute(self, op: Op, client: Client, rng: random.Random) -> None:
        started = time.monotonic()
        backoff = 0.05
        while True:
            op.attempts += 1
            stub = self.replicas.pick(rng)
            try:
                reply = _call(stub, op, client.metadata, self.attempt_timeout)
            except grpc.RpcError as error:
                code = error.code()
                op.codes.append(code.name)
                self.codes[code.name] += 1
                if code not in RETRYABLE:
                    op.outcome = "failed"
                    op.final_code = code.name
                    op.final_reason = error_reason(error)
                    return
                op.ambiguous_attempts += 1
                self._count(failed_attempts=1)
                if time.monotonic() - started > self.retry_budget:
                    op.outcome = "unknown"
                    op.final_code = code.name
                    return
                time.sleep(rng.uniform(0, backoff))
                backoff = min(1.0, backoff * 2)
                continue
            self.codes["OK"] += 1
            op.codes.append("OK")
            op.outcome = "acked"
            op.tx_id = reply.transaction.id
            op.tx_ids_seen.add(reply.transaction.id)
            op.replayed = reply.replayed
            self._count(acked=1)
            return

    # -- progress ----------------------------------------------------------------------

    def progress(self) -> Progress:
        with self._progress_changed:
            return self._progress

    def wait_until(self, done: Callable[[Progress], bool], ceiling: float) -> bool:
        """Block until `done(progress)` holds; `ceiling` (seconds) is only a hang guard.
        Returns whether `done` held."""
        with self._progress_changed:
            return self._progress_changed.wait_for(lambda: done(self._progress), ceiling)

    def _count(self, **increments: int) -> None:
        with self._progress_changed:
            changes = {k: getattr(self._progress, k) + v for k, v in increments.items()}
            self._progress = replace(self._progress, **changes)
            self._progress_changed.notify_all()

    # -- reporting ---------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        outcomes = Counter(op.outcome for op in self.ops)
        return {
            "attempted": len(self.ops),
            "acknowledged": outcomes["acked"],
            "failed_definitively": outcomes["failed"],
            "unknown_outcome": outcomes["unknown"],
            "retried": sum(1 for op in self.ops if op.attempts > 1),
            "attempts": sum(op.attempts for op in self.ops),
            "acknowledged_as_replay": sum(1 for op in self.ops if op.replayed),
            "by_kind": dict(Counter(op.kind for op in self.ops)),
            "failure_reasons": dict(
                Counter(
                    op.final_reason or op.final_code for op in self.ops if op.outcome == "failed"
                )
            ),
            "attempt_status_codes": dict(self.codes),
        }


def _amount(rng: random.Random, currency: str, max_major: int) -> str:
    exponent = CURRENCIES[currency]
    scale = 10**exponent * (100 if exponent == 0 else 1)
    minor = rng.randint(1, max_major * scale)
    return str(Decimal(minor).scaleb(-exponent)) if exponent else str(minor)


def _call(
    stub: wallet_pb2_grpc.WalletServiceStub,
    op: Op,
    metadata: tuple[tuple[str, str], ...],
    timeout: float,
) -> wallet_pb2.MovementResponse:
    fields = {"amount": op.amount, "currency": op.currency, "idempotency_key": op.key}
    method: Any
    request: Any
    if op.kind == "deposit":
        method, request = stub.Deposit, wallet_pb2.DepositRequest(**fields)
    elif op.kind == "withdrawal":
        method, request = stub.Withdraw, wallet_pb2.WithdrawRequest(**fields)
    else:
        method = stub.Transfer
        request = wallet_pb2.TransferRequest(to_username=op.to_username, **fields)
    response: wallet_pb2.MovementResponse = method(request, metadata=metadata, timeout=timeout)
    return response


def _unary(method: Any, request: Any, attempts: int = 50) -> Any:
    """Setup calls (register/login) before any fault runs; retried only while starting up."""
    for attempt in range(attempts):
        try:
            return method(request, timeout=10)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")
