"""wallet_client.errors reads what a real server sent: status code, message, ErrorInfo
(reason, domain, metadata) and RetryInfo, from sync and asyncio calls alike, and reads a
plain status or a transport failure as "no reason" rather than failing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.processes import free_port
from wallet_client.errors import decode_rpc_error, error_reason

RICH = "/test.Errors/Rich"
BARE = "/test.Errors/Bare"


def _rich(request: bytes, context: grpc.ServicerContext) -> bytes:
    packed = []
    for detail in (
        error_details_pb2.ErrorInfo(
            reason="insufficient_funds", domain="wallet", metadata={"currency": "USD"}
        ),
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=5)),
    ):
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION, message="Not enough money", details=packed
    )
    context.abort_with_status(rpc_status.to_status(status))
    return b""


def _bare(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b""


class _Handler(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic in grpc-stubs only
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        behaviour = {RICH: _rich, BARE: _bare}.get(handler_call_details.method)
        return grpc.unary_unary_rpc_method_handler(behaviour) if behaviour else None


@pytest.fixture(scope="module")
def addr() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _fail(addr: str, method: str) -> grpc.RpcError:
    with grpc.insecure_channel(addr) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(method, None, None)(b"", timeout=10)
    return caught.value


def test_reads_code_message_error_info_and_retry_delay(addr: str) -> None:
    decoded = decode_rpc_error(_fail(addr, RICH))
    assert decoded.code == grpc.StatusCode.FAILED_PRECONDITION
    assert decoded.message == "Not enough money"
    assert (decoded.reason, decoded.domain) == ("insufficient_funds", "wallet")
    assert decoded.metadata == {"currency": "USD"}
    assert decoded.retry_delay_seconds == pytest.approx(2.000000005)


async def test_reads_an_asyncio_error_the_same_way(addr: str) -> None:
    async with grpc.aio.insecure_channel(addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(RICH, None, None)(b"", timeout=10)
    decoded = decode_rpc_error(caught.value)
    assert (decoded.code, decoded.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "insufficient_funds",
    )
    assert decoded.retry_delay_seconds == pytest.approx(2.000000005)


def test_a_plain_status_has_no_reason(addr: str) -> None:
    error = _fail(addr, BARE)
    decoded = decode_rpc_error(error)
    assert (decoded.code, decoded.message) == (grpc.StatusCode.NOT_FOUND, "no such thing")
    assert (decoded.reason, decoded.metadata, decoded.retry_delay_seconds) == ("", {}, None)
    assert error_reason(error) == ""


def test_a_transport_failure_has_no_reason() -> None:
    decoded = decode_rpc_error(_fail(f"127.0.0.1:{free_port()}", RICH))
    assert decoded.code == grpc.StatusCode.UNAVAILABLE
    assert decoded.reason == ""
