"""Group commit: concurrent money movements share one database transaction.

Request threads hand their fully decided `MovementPlan` to one writer thread, which
applies whatever has queued up meanwhile as one batch (`WalletStore.apply_movements`):
one lock round, one commit and one fsync for many movements. Each movement is still
atomic and idempotent on its own, and a refused one does not fail its neighbours. At low
load a batch is a single movement, so latency is that of a plain transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from wallet_service.errors import Unavailable, WalletError
from wallet_service.models import MovementOutcome, MovementPlan
from wallet_service.store_contract import MovementResult, WalletStore

log = logging.getLogger(__name__)

RESULT_TIMEOUT_SECONDS = 60.0


class MovementWriter(Protocol):
    def apply(self, plan: MovementPlan) -> MovementOutcome:
        """The committed outcome, or raises the WalletError that refused the movement."""

    @property
    def overlapped(self) -> int:
        """How many movements were written while another one was (an event count, for
        tests and metrics): proof that concurrent calls really met at the database."""

    def close(self) -> None: ...


class CommitObserver(Protocol):
    """What telemetry sees of the writer, without the writer knowing any telemetry library."""

    def capture(self) -> object:
        """Called in the request thread: what the batch needs of its caller (the trace
        context), handed back to `batch` from the writer thread."""

    def batch(self, size: int, callers: Sequence[object]) -> AbstractContextManager[object]:
        """Encloses the write of one batch (its timing and its span)."""


class NullObserver:
    def capture(self) -> object:
        return None

    def batch(self, size: int, callers: Sequence[object]) -> AbstractContextManager[object]:
        return nullcontext()


def _settle(result: MovementResult) -> MovementOutcome:
    if isinstance(result, WalletError):
        raise result
    return result


class DirectWriter:
    """One transaction per movement, in the caller's thread."""

    def __init__(self, store: WalletStore, *, observer: CommitObserver | None = None) -> None:
        self._store = store
        self._observer = observer or NullObserver()
        self._guard = threading.Lock()
        self._in_flight = 0
        self._overlapped = 0

    @property
    def overlapped(self) -> int:
        """Calls that started while another call was still writing."""
        return self._overlapped

    def apply(self, plan: MovementPlan) -> MovementOutcome:
        with self._guard:
            self._overlapped += 1 if self._in_flight else 0
            self._in_flight += 1
        try:
            with self._observer.batch(1, [self._observer.capture()]):
                result = self._store.apply_movements([plan])[0]
            return _settle(result)
        finally:
            with self._guard:
                self._in_flight -= 1

    def close(self) -> None:
        return None


# The plan, its caller's future, and what the observer captured in the caller's thread.
_Pending = tuple[MovementPlan, "Future[MovementResult]", object]


class GroupCommitWriter:
    def __init__(
        self,
        store: WalletStore,
        *,
        max_batch: int = 64,
        observer: CommitObserver | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._observer = observer or NullObserver()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._overlapped = 0  # written by the writer thread only
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def apply(self, plan: MovementPlan) -> MovementOutcome:
        done: Future[MovementResult] = Future()
        self._queue.put((plan, done, self._observer.capture()))
        try:
            return _settle(done.result(timeout=RESULT_TIMEOUT_SECONDS))
        except FutureTimeout as exc:
            # Its fate is unknown to us too: the client's retry with the same key settles it.
            raise Unavailable(
                "storage_timeout", "The write did not finish in time; retry with the same key"
            ) from exc

    @property
    def overlapped(self) -> int:
        """Movements that shared their batch with at least one other."""
        return self._overlapped

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            if len(batch) > 1:
                self._overlapped += len(batch)
            try:
                self._commit(batch)
            except Exception:  # never let the writer die and strand every caller
                log.exception("group commit writer failed a batch")
                for _, done, _ in batch:
                    if not done.done():
                        done.set_exception(Unavailable("storage_unavailable", "Write failed"))

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._observer.batch(len(batch), [caller for _, _, caller in batch]):
                results = self._store.apply_movements([plan for plan, _, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # Something failed the whole batch: retry each alone, so only its cause fails.
            log.warning("batch of %d failed (%s); retrying one by one", len(batch), exc)
            for pending in batch:
                self._commit([pending])
            return
        for (_, done, _), result in zip(batch, results, strict=True):
            done.set_result(result)
