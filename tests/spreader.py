"""A connection spreader on loopback, as a Kubernetes Service spreads connections to its pods.

kube-proxy picks a backend per *connection* (not per request), and the API server keeps its
connections to a webhook alive, so this does the same: every TCP connection accepted on
`127.0.0.1:port` goes to the next backend, round robin, and bytes are copied both ways until
either side closes. TLS passes through untouched (the replicas share one serving certificate).

    with Spreader([("127.0.0.1", 9443), ("127.0.0.1", 9444)]) as spreader:
        url = f"https://127.0.0.1:{spreader.port}"
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Sequence


class Spreader:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._next = itertools.cycle(range(len(self.backends)))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = [0] * len(self.backends)  # accepted connections per backend
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="spreader", daemon=True)

    def __enter__(self) -> Spreader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            index = next(self._next)
            self.connections[index] += 1
            try:
                upstream = socket.create_connection(self.backends[index], timeout=5)
            except OSError:
                client.close()  # as a Service does when the pod is gone: the caller retries
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
