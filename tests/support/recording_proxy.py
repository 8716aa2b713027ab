"""A gRPC proxy that records the metadata of every call it forwards, so a test can
see what a client sends on the wire while a real server answers.

    proxy = RecordingProxy(server.target)   # serves on proxy.target
    ... client calls through proxy.target ...
    proxy.calls                             # [(method, {key: value}), ...]
    proxy.close()

Calls are forwarded as bytes (no message is parsed), in both directions and with
any cardinality: gRPC frames a unary call as a stream of one, so one streaming
handler serves them all. Errors come back with their code, message and details.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


class RecordingProxy(grpc.GenericRpcHandler):
    """Listens on 127.0.0.1 (plaintext) and forwards every call to `upstream`."""

    def __init__(self, upstream: str) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, str]]] = []
        self._channel = grpc.insecure_channel(upstream, options=_OPTIONS)
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=32), handlers=[self], options=_OPTIONS
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        """host:port to dial instead of the upstream server."""
        return f"127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[tuple[str, dict[str, str]]]:
        """Each call so far: its method (/package.Service/Method) and metadata."""
        with self._lock:
            return list(self._calls)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        metadata = {
            key: value
            for key, value in handler_call_details.invocation_metadata
            if isinstance(value, str)
        }
        with self._lock:
            self._calls.append((method, metadata))
        forwarded = [
            (key, value)
            for key, value in metadata.items()
            if not key.startswith("grpc-") and key != "user-agent"
        ]
        upstream = self._channel.stream_stream(method)

        def forward(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            remaining = context.time_remaining()  # huge when the call has no deadline
            timeout = remaining if remaining is not None and remaining < 86400 else None
            call = upstream(requests, metadata=forwarded, timeout=timeout)
            context.add_callback(call.cancel)
            try:
                yield from call
            except grpc.RpcError as error:
                context.set_trailing_metadata(error.trailing_metadata() or ())
                context.abort(error.code(), error.details() or "")

        return grpc.stream_stream_rpc_method_handler(forward)

    def close(self) -> None:
        """Stop serving and close the upstream channel."""
        self._server.stop(None).wait()
        self._channel.close()
