"""Nameservers for the dnspython backend: ``ip``, ``ip:port``, ``[v6]:port``, ``tls://``, ``https://``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


def check_nameservers(name: str, value: Any) -> Any:
    if isinstance(value, str):
        value = (value,)
    out = tuple(value)
    for server in out:
        if not isinstance(server, str):
            raise TypeError(f"{name}: a nameserver is a string, not {type(server).__name__}")
        parse_nameserver(server)  # raises ValueError naming the bad one
    return out


@dataclass(frozen=True)
class Nameserver:
    """One parsed ``nameservers`` item.

    ``scheme`` is ``dns`` (plain UDP, TCP on truncation), ``tls`` (RFC 7858) or
    ``https`` (RFC 8484). ``host`` is an IP literal or a name (a name is resolved
    with the system resolver when a connection is opened); ``tls_name`` is what
    the server's certificate must say (the ``#name`` part, else ``host``).
    """

    scheme: str
    host: str
    port: int
    path: str = ""
    tls_name: str = ""

    @property
    def encrypted(self) -> bool:
        return self.scheme != "dns"


_DEFAULT_PORTS = {"dns": 53, "tls": 853, "https": 443}


def parse_nameserver(server: str) -> Nameserver:
    """``ip``, ``ip:port``, ``[v6]:port``, ``tls://host[:port][#name]``, ``https://host/path``."""
    text = server.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        host, port = split_nameserver(text)
        return Nameserver("dns", host, port)
    scheme = scheme.lower()
    if scheme == "quic":
        # dnspython's DoQ needs aioquic (with cryptography and pylsqpack): not a
        # dependency we add for one transport.
        raise ValueError(f"bad nameserver {server!r}: quic:// is not supported")
    if scheme not in ("tls", "https"):
        raise ValueError(f"bad nameserver {server!r}: scheme must be tls:// or https://")
    rest, _, tls_name = rest.partition("#")
    authority, slash, path = rest.partition("/")
    if scheme == "tls" and slash and path:
        raise ValueError(f"bad nameserver {server!r}: tls:// takes no path")
    if scheme == "https":
        path = "/" + path if slash else "/dns-query"  # RFC 8484's customary path
    host, port = _split_authority(server, authority, _DEFAULT_PORTS[scheme])
    tls_name = tls_name or host
    if not _is_hostname(tls_name):
        raise ValueError(f"bad nameserver {server!r}: {tls_name!r} is not a host name")
    return Nameserver(scheme, host, port, path, tls_name)


def _is_hostname(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    return bool(text) and all(
        0 < len(label) < 64 and label.isascii() and label.replace("-", "").isalnum()
        for label in labels
    )


def _split_authority(server: str, authority: str, default_port: int) -> tuple[str, int]:
    port = default_port
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad nameserver {server!r}")
        port_text = rest[1:] if rest else ""
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if port_text:
        if not port_text.isdigit():
            raise ValueError(f"bad nameserver {server!r}: bad port")
        port = int(port_text)
    if not _is_hostname(host):
        raise ValueError(f"bad nameserver {server!r}: {host!r} is not a host name or IP")
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {server!r}: port out of range")
    return host, port


def split_nameserver(server: str) -> tuple[str, int]:
    """``"ip"``, ``"ip:port"`` or ``"[v6]:port"`` -> (ip, port)."""
    text = server.strip()
    port = 53
    try:
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"bad nameserver {server!r}")
                port = int(rest[1:])
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = int(p)
        else:
            host = text
    except ValueError:
        raise ValueError(f"bad nameserver {server!r}: bad port") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad nameserver {server!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {server!r}: port out of range")
    return host, port
