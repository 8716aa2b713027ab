"""A TCP proxy for tests that need to cut a client's connection without stopping the
server: `cut()` closes every connection passing through, and new ones are still
accepted, so a client that reconnects reaches the same server again.

    proxy = TcpProxy(server.port)   # listens on 127.0.0.1:<proxy.port>
    ...
    proxy.cut()                     # every open connection is reset
    proxy.freeze()                  # nothing passes any more, nothing is closed
    proxy.close()
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target_port>, one thread pair per
    connection."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._frozen = threading.Event()
        self.connections = 0
        """How many client connections were accepted so far."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):  # no Nagle delays on small gRPC frames
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self.connections += 1
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self._frozen.is_set():
                    continue  # swallowed, as by a client that vanished off the network
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source)
            self._drop(sink)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Reset every connection open now (new ones are still accepted)."""
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            with contextlib.suppress(OSError):
                # RST rather than FIN: what a dead network path looks like.
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            self._drop(sock)

    def freeze(self) -> None:
        """From now on drop whatever arrives on any connection, in both directions,
        and close none: to each end the other stops answering (a client host that
        lost power, a network path gone dark), which only a keepalive can tell."""
        self._frozen.set()

    def close(self) -> None:
        """Stop accepting and cut everything."""
        with self._lock:
            self._closed = True
        self._listener.close()
        self.cut()
