"""DNS over HTTPS (RFC 8484) on HTTP/2, with kept connections, for the dnspython backend.

Why not dnspython's ``dns.query.https``: it needs an HTTP client stack
(httpx/httpcore, or their successors, depending on the dnspython release),
and that stack maps a signal handler's ``TimeoutError`` to its own timeout
exception and waits in its own way, so neither the caller's signals nor
``close()`` would behave as on the other transports. HTTP/2 is what RFC 8484
section 5.2 recommends and all that some servers speak (unbound only serves
DoH on HTTP/2), and the ``h2`` package is a small pure-Python state machine
(with ``hpack`` and ``hyperframe``): the socket, the TLS and the waits stay
:mod:`.transports`'s. Each query is one POST of ``application/dns-message``
on its own stream; A and AAAA go out together on one connection.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Sequence
from typing import Any

import dns.message
import dns.rcode

from .transports import (
    OpenSockets,
    Query,
    ResolveHost,
    StreamConnection,
    StreamServer,
    deliver,
    parse,
    readable_now,
)

_MIME = b"application/dns-message"
# Largest DNS message over HTTP (RFC 8484 section 6: the 65535-byte DNS limit).
_MAX_BODY = 65535


def available() -> bool:
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        return False
    return True


class _H2Connection:
    """One HTTP/2 connection: a :class:`StreamConnection` under an ``h2`` state machine."""

    def __init__(self, stream: StreamConnection, authority: str, path: str) -> None:
        import h2.config
        import h2.connection

        self.stream = stream
        self.sock = stream.sock
        self._authority = authority.encode("ascii")
        self._path = path.encode("ascii")
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.initiate_connection()
        self._dead = False
        self.used = 0

    def _flush(self, deadline: float) -> None:
        data = self._h2.data_to_send()
        if data:
            self.stream.send(data, deadline)

    def exchange(self, queries: Sequence[Query], deadline: float) -> None:
        import h2.events

        streams: dict[int, tuple[Query, list[bytes], list[int]]] = {}
        for query in queries:
            stream_id = self._h2.get_next_available_stream_id()
            headers = [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", self._authority),
                (b":path", self._path),
                (b"content-type", _MIME),
                (b"accept", _MIME),
                (b"content-length", str(len(query.wire)).encode()),
            ]
            self._h2.send_headers(stream_id, headers)
            self._h2.send_data(stream_id, query.wire, end_stream=True)
            streams[stream_id] = (query, [], [])
        self._flush(deadline)
        while streams:
            data = self.stream.receive(deadline)
            if data is None:
                return
            for event in self._h2.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    self._dead = True
                    raise OSError(errno.ECONNRESET, "the DoH server closed the connection")
                item = streams.get(getattr(event, "stream_id", 0) or 0)
                if item is None:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    item[2].append(_status(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    self._h2.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                    item[1].append(event.data)
                    if sum(map(len, item[1])) > _MAX_BODY:
                        self._h2.reset_stream(event.stream_id)
                        del streams[event.stream_id]
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    del streams[event.stream_id]
                    query, body, status = item
                    response = parse(query, b"".join(body)) if status == [200] else None
                    if response is not None:
                        deliver(query, response)
                    else:  # an HTTP error is the server failing: let the next one try
                        query.response = _servfail(query)
            self._flush(deadline)
        self.used += 1

    def idle_ok(self) -> bool:
        if self._dead:
            return False
        state = readable_now(self.sock)
        if state is None:
            return False
        if state and not isinstance(self.sock, ssl.SSLSocket):
            return False
        if state:  # a PING, SETTINGS or GOAWAY frame, or EOF: read it now
            try:
                data = self.sock.recv(65535)
            except (ssl.SSLWantReadError, BlockingIOError):
                return True
            except OSError:
                return False
            if not data:
                return False
            import h2.events

            events = self._h2.receive_data(data)
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                return False
            self._h2.data_to_send()  # an ACK we may drop: the server does not wait for it
        return True

    def close(self) -> None:
        self.stream.close()


def _status(headers: Any) -> int:
    for name, value in headers:
        if name in (b":status", ":status"):
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _servfail(query: Query) -> dns.message.Message:
    response = dns.message.make_response(query.message)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response


class HttpsServer(StreamServer):
    """DNS over HTTPS on HTTP/2; the connection handling is :class:`StreamServer`'s."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        server_name: str,
        context: ssl.SSLContext,
        sockets: OpenSockets,
        resolve_host: ResolveHost,
    ) -> None:
        super().__init__(host, port, server_name, context, sockets, resolve_host)
        self._path = path
        authority = f"[{host}]" if ":" in host else host
        if port != 443:
            authority += f":{port}"
        self._authority = authority
        context.set_alpn_protocols(["h2"])

    def _open(self, family: int, ip: str, deadline: float) -> Any:
        stream = super()._open(family, ip, deadline)
        sock: Any = stream.sock
        if sock.selected_alpn_protocol() != "h2":
            stream.close()
            raise OSError(errno.EPROTO, f"{self.host} does not speak HTTP/2 (RFC 8484 5.2)")
        conn = _H2Connection(stream, self._authority, self._path)
        try:
            conn._flush(deadline)
        except BaseException:
            conn.close()
            raise
        return conn
