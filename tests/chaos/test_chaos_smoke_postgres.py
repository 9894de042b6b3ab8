"""Chaos smoke on PostgreSQL: two replicas on one database, faults injected (the server
itself is not restarted here: other tests share it), zero violations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import require_postgres
from tests.support.chaos_smoke import smoke


@pytest.mark.slow
@pytest.mark.timeout(900)  # hang guard; the run is paced by events
@pytest.mark.postgres
def test_chaos_smoke_postgres(tmp_path: Path) -> None:
    require_postgres()
    smoke("postgres", tmp_path, seed=12)
