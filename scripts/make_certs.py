"""`make certs`: a development CA and one certificate per process (wallet, fraud, gateway).

Written with the openssl command line (no Python crypto package in the lock). Each
certificate names localhost, 127.0.0.1, ::1 and its compose service name, and is good for
both ends of a hop (serverAuth + clientAuth): a process serves and calls with one identity.
Development only: the CA key sits beside the certificates, unencrypted (mode 0600); the
processes' keys are readable by all (docker-compose's containers run as another user).

    python -m scripts.make_certs [directory]   # default data/certs
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_DIRECTORY = Path("data/certs")
PROCESSES = ("wallet", "fraud", "gateway")
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
DAYS = "825"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "digital-wallet dev CA") -> None:
    """`ca.crt` and `ca.key` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *CURVE, "-days", DAYS, "-subj", f"/CN={name}",
        "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def make_leaf(directory: Path, name: str) -> None:
    """`<name>.crt` and `<name>.key`, signed by the CA in `directory`."""
    extensions = (
        f"subjectAltName=DNS:localhost,DNS:{name},IP:127.0.0.1,IP:::1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        csr, ext = Path(scratch, "leaf.csr"), Path(scratch, "leaf.ext")
        ext.write_text(extensions)
        _openssl(
            "req", "-new", *CURVE, "-subj", f"/CN={name}",
            "-keyout", str(directory / f"{name}.key"), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-days", DAYS, "-set_serial", _serial(),
            "-CA", str(directory / "ca.crt"), "-CAkey", str(directory / "ca.key"),
            "-extfile", str(ext), "-out", str(directory / f"{name}.crt"),
        )  # fmt: skip


def _serial() -> str:
    # Unique per certificate without a serial file next to the CA.
    return str(secrets.randbits(63))


def make_certs(directory: Path = DEFAULT_DIRECTORY, names: tuple[str, ...] = PROCESSES) -> None:
    make_ca(directory)
    for name in names:
        make_leaf(directory, name)
        # Readable by the containers' unprivileged user (uid 10001): docker-compose mounts
        # each key read-only, and a bind mount keeps the host's owner and mode.
        (directory / f"{name}.key").chmod(0o644)
    (directory / "ca.key").chmod(0o600)  # never mounted: it signs, it is not presented


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIRECTORY
    make_certs(directory)
    print(f"development CA and certificates for {', '.join(PROCESSES)} in {directory}/")


if __name__ == "__main__":
    main()
