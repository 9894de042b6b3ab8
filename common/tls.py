"""TLS and mutual TLS for the gRPC hops (gateway -> wallet -> fraud): the one place that reads
certificate settings and turns them into grpc credentials.

Each process has one identity, read from `<PREFIX>_TLS_CERT`, `<PREFIX>_TLS_KEY` and
`<PREFIX>_TLS_CA` (PEM file paths; PREFIX is WALLET, FRAUD or GATEWAY). The same identity
serves (its server) and calls (its client): the wallet presents its certificate to the fraud
service and verifies the fraud service against its CA. With nothing set the hop stays
plaintext, the `make run` default on loopback.

Server: certificate + key -> TLS; with a CA too, every client must present a certificate
signed by that CA (mTLS). Client: a CA -> the server's certificate must chain to it (without
one, the system roots); certificate + key -> presented to the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.config import ConfigError

# grpc is imported where credentials are built: settings modules (wallet_service.settings is
# domain-side, see tests/wallet/test_layering.py) read TlsSettings without pulling grpc in.
if TYPE_CHECKING:
    import grpc


@dataclass(frozen=True)
class TlsSettings:
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str) -> TlsSettings:
        settings = cls(
            cert=_path(env, f"{prefix}_TLS_CERT"),
            key=_path(env, f"{prefix}_TLS_KEY"),
            ca=_path(env, f"{prefix}_TLS_CA"),
        )
        if (settings.cert is None) != (settings.key is None):
            raise ConfigError(f"{prefix}_TLS_CERT and {prefix}_TLS_KEY are set together")
        return settings

    @property
    def enabled(self) -> bool:
        return any(item is not None for item in (self.cert, self.key, self.ca))

    @property
    def mutual(self) -> bool:
        """A server with a CA demands client certificates."""
        return self.ca is not None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"{name}: no such file {raw!r}")
    return path


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def server_credentials(settings: TlsSettings) -> grpc.ServerCredentials | None:
    """None: serve plaintext. A CA without a certificate cannot serve TLS: refused."""
    import grpc

    if not settings.enabled:
        return None
    cert, key = _read(settings.cert), _read(settings.key)
    if cert is None or key is None:
        raise ConfigError("a TLS server needs a certificate and a key (*_TLS_CERT, *_TLS_KEY)")
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=_read(settings.ca),
        require_client_auth=settings.mutual,
    )


def channel_credentials(settings: TlsSettings) -> grpc.ChannelCredentials | None:
    """None: dial plaintext."""
    import grpc

    if not settings.enabled:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.ca),
        private_key=_read(settings.key),
        certificate_chain=_read(settings.cert),
    )


def channel(
    address: str,
    settings: TlsSettings,
    options: list[tuple[str, object]] | None = None,
) -> grpc.Channel:
    """A sync channel to `address`: TLS when configured, plaintext otherwise."""
    import grpc

    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)
