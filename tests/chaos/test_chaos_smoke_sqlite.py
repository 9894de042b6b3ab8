"""Chaos smoke on SQLite: two wallet processes on one file, faults injected, zero violations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos_smoke import smoke


@pytest.mark.slow
@pytest.mark.timeout(900)  # hang guard; the run is paced by events
def test_chaos_smoke_sqlite(tmp_path: Path) -> None:
    smoke("sqlite", tmp_path, seed=11)
