"""The proto contract checks: the pinned buf CLI (tools/buf, installed by `make lint`) and
a scratch copy of the buf workspace that a test may break on purpose."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.database import IN_CI

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "tools/buf/node_modules/.bin/buf"
RELEASED_CONTRACT = REPO / "protos/released/wallet-fraud-v1.binpb"


def buf_cli() -> Path:
    """The pinned buf; skipped locally without it (`make proto-check` installs it), a
    failure in CI, where `make lint` has installed it before the tests run."""
    if not BUF.exists():
        if IN_CI:
            pytest.fail(f"buf is required in CI: {BUF} is missing (make proto-check)")
        pytest.skip(f"buf is not installed at {BUF} (make proto-check installs it with npm)")
    return BUF


@dataclass(frozen=True)
class BufWorkspace:
    """buf.yaml and protos/ copied to `root`: edit `proto(...)`, then run buf on it."""

    root: Path
    buf: Path

    def proto(self, relative: str) -> Path:
        return self.root / "protos" / relative

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replace the one occurrence of `old` (a test's edit must hit exactly one place)."""
        path = self.proto(relative)
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {relative}"
        path.write_text(text.replace(old, new))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.buf), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def lint(self) -> subprocess.CompletedProcess[str]:
        return self.run("lint")

    def breaking(self) -> subprocess.CompletedProcess[str]:
        return self.run("breaking", "--against", str(RELEASED_CONTRACT))


def buf_workspace(root: Path) -> BufWorkspace:
    shutil.copy(REPO / "buf.yaml", root / "buf.yaml")
    for package in ("wallet", "fraud"):
        shutil.copytree(REPO / "protos" / package, root / "protos" / package)
    return BufWorkspace(root=root, buf=buf_cli())
