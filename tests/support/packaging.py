"""The client package as an outside service gets it: built into a wheel from
wallet_client/ (its own pyproject.toml and build backend), installed into a fresh venv that
sees nothing of this repository, offline (no index: the build uses this venv's setuptools
and grpcio-tools, and the new venv borrows this venv's grpcio and protobuf through a .pth
line, since the package's dependencies are not to be downloaded in a test)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 600.0  # a hang guard for each pip step


def _pip(*args: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def install_wallet_client(root: Path) -> Path:
    """Build the wheel, install it into a new venv under `root`; that venv's python."""
    wheels = root / "wheels"
    _pip(
        "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO / "wallet_client")
    )
    (wheel,) = wheels.glob("wallet_client-*.whl")
    target = root / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    _pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    ).stdout.strip()
    # Dependencies only: a plain directory line, so this venv's own .pth files (the one
    # putting the repository on the path among them) are not read.
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python
