"""Audit sink addresses, parsed once: the config model refuses what these refuse, the sinks use what they return.

Pure functions, no I/O. Input that could be read two ways (an unbracketed IPv6 literal, a missing port, a URL
carrying credentials) is refused rather than guessed.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

SYSLOG_SCHEMES = ("unix", "udp", "tcp", "tls")
WEBHOOK_SCHEMES = ("http", "https")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a sink sends: `host` is bare (an IPv6 literal without brackets); `path` is the unix socket path or
    the HTTP path with its query."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _host_port(netloc: str, default_port: int | None) -> tuple[str, int]:
    if "@" in netloc:
        raise ValueError("must not carry credentials (user:password@); use the sink's authorization file")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 literal (expected [address]:port)")
        host, rest = netloc[1:end], netloc[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"[{host}] is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError("expected :port after the IPv6 literal")
        port_text = rest[1:] if rest else ""
    else:
        if netloc.count(":") > 1:
            raise ValueError("an IPv6 address must be written in brackets: [::1]:port")
        host, _, port_text = netloc.partition(":")
        if not host:
            raise ValueError("has no host")
        if not _HOSTNAME.match(host):
            raise ValueError(f"{host!r} is not a host name or IP address")
        if ":" in netloc and not port_text:
            raise ValueError("has an empty port")
    if not port_text:
        if default_port is None:
            raise ValueError("needs a port (host:port)")
        return host, default_port
    if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def parse_syslog_address(text: str) -> Endpoint:
    """`unix:///dev/log`, `udp://host:port`, `tcp://host:port` or `tls://host:port`; ValueError says why not."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"needs a scheme: one of {', '.join(s + '://' for s in SYSLOG_SCHEMES)}")
    if scheme not in SYSLOG_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of {', '.join(SYSLOG_SCHEMES)}")
    if any(c in rest for c in "?#") or any(c.isspace() for c in rest):
        raise ValueError("must not contain a query, a fragment or white space")
    if scheme == "unix":
        if not rest.startswith("/") or rest.startswith("//"):
            raise ValueError("a unix address is unix:///absolute/path/of/the/socket")
        return Endpoint("unix", "", 0, rest)
    netloc, slash, path = rest.partition("/")
    if slash and path:
        raise ValueError("a network syslog address has no path (scheme://host:port)")
    host, port = _host_port(netloc, None)
    return Endpoint(scheme, host, port, "")


def parse_webhook_url(text: str) -> Endpoint:
    """`http(s)://host[:port]/path[?query]`, no credentials, no fragment; ValueError says why not."""
    if any(c.isspace() for c in text):
        raise ValueError("must not contain white space")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in WEBHOOK_SCHEMES:
        raise ValueError(f"scheme must be http or https, not {parts.scheme or '(none)'!r}")
    if not parts.netloc:
        raise ValueError("has no host")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    host, port = _host_port(parts.netloc, 443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint(parts.scheme, host, port, path)
