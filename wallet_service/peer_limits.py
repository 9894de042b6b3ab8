"""Per-client limits on the wallet's public RPCs (Register, Login), for every gRPC caller.

The client is the peer address from the connection (`context.peer()`). A trusted proxy
(WALLET_TRUSTED_PROXIES, default loopback: the gateway beside the wallet) stands for many
clients, so from it, and only from it, the `x-forwarded-for` metadata names the client: the
gateway sets it from its own view of the browser's address. Anyone else sending the header
is limited as itself, so it cannot pick a fresh identity per request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import grpc

from common.grpc_server import UnaryBehavior, UnaryInterceptor, metadata_value
from common.ratelimit import RateLimiter
from wallet_service.auth_interceptor import SERVICE_PREFIX
from wallet_service.limits import Quota
from wallet_service.settings import IpNetwork, WalletSettings

FORWARDED_FOR = "x-forwarded-for"


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string: `ipv4:1.2.3.4:5`, `ipv6:[::1]:5` (brackets
    may come percent-encoded), `unix:/path` (kept whole)."""
    scheme, _, rest = unquote(peer).partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return peer
    host = rest.rsplit(":", 1)[0] if rest.count(":") and not rest.endswith("]") else rest
    return host.strip("[]")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[IpNetwork, ...]) -> str:
    """Who to count a public call against."""
    host = peer_host(peer)
    address = _ip(host)
    if forwarded_for and address is not None and any(address in net for net in trusted):
        # A list grows to the right as proxies append; the last entry is our proxy's view.
        claimed = _ip(forwarded_for.split(",")[-1])
        if claimed is not None:
            return str(claimed)
    return host


class PeerLimitInterceptor(UnaryInterceptor):
    def __init__(self, quotas: Mapping[str, Quota], trusted: tuple[IpNetwork, ...]) -> None:
        self._quotas = dict(quotas)  # full method name -> its quota
        self._trusted = trusted

    @classmethod
    def from_settings(cls, settings: WalletSettings, limiter: RateLimiter) -> PeerLimitInterceptor:
        quotas = {
            SERVICE_PREFIX + "Register": Quota(
                limiter, settings.register_per_peer, "Too many registrations, try again later"
            ),
            SERVICE_PREFIX + "Login": Quota(
                limiter, settings.login_per_peer, "Too many login attempts, try again later"
            ),
        }
        return cls(quotas, settings.trusted_proxies)

    def applies_to(self, method: str) -> bool:
        return method in self._quotas

    def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.ServicerContext, method: str
    ) -> Any:
        name = method.rsplit("/", 1)[-1].lower()
        forwarded = metadata_value(context, FORWARDED_FOR)
        client = client_address(context.peer(), forwarded, self._trusted)
        self._quotas[method].check(f"{name}:peer:{client}")
        return inner(request, context)
