"""onexd's egress proxy: HTTP CONNECT and plain HTTP, allowing only a zone's allowlist. Standard library only:
it runs inside the runner-python image, locked down like a job, as `python3 /app/proxy/egress_proxy.py`.

The allowlist is re-read from /etc/onexd-zone/config.json whenever it changes, so a policy reload reaches new
connections within a second. Host names are resolved here, by the proxy: a CIDR entry allows a destination whose
address is inside it; a host entry allows that exact name (or, with `*.`, its subdomains). Addresses that reach
the host or the proxy itself (loopback, link-local, unspecified, multicast, the container's gateways, i.e. the
Docker bridge) are refused whatever a name resolves to, unless a CIDR entry inside that range names them.
Every refusal is one JSON line on stdout: onexd collects them for the audit trail. Nothing in the config can
make the proxy raise: a malformed entry allows nothing (onexd validates them at load anyway).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

CONFIG = os.environ.get("ONEXD_PROXY_CONFIG", "/etc/onexd-zone/config.json")
PORT = int(os.environ.get("ONEXD_PROXY_PORT", "3128"))
MAX_HEADER = 64 * 1024
_config: dict[str, Any] = {"mtime": 0.0, "zone": "?", "rules": []}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Ranges that reach the host or the proxy itself rather than the outside world.
SPECIAL_RANGES: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "fe80::/10", "ff00::/8"))
ROUTES = "/proc/net/route"


def _rule(raw: Any) -> dict[str, Any] | None:
    """A config entry in the form decide() uses, or None for anything malformed (it then allows nothing)."""
    if not isinstance(raw, dict):
        return None
    ports = raw.get("ports")
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        return None
    if isinstance(raw.get("host"), str):
        return {"host": raw["host"].lower(), "ports": ports}
    if isinstance(raw.get("cidr"), str):
        try:
            return {"cidr": ipaddress.ip_network(raw["cidr"], strict=False), "ports": ports}
        except ValueError:
            return None
    return None


def load_config() -> dict[str, Any]:
    try:
        mtime = os.stat(CONFIG).st_mtime
        if mtime != _config["mtime"]:
            with open(CONFIG, encoding="utf-8") as f:
                data = json.load(f)
            raw_rules = data.get("egress", []) if isinstance(data, dict) else []
            rules = [r for r in map(_rule, raw_rules if isinstance(raw_rules, list) else []) if r is not None]
            zone = data.get("zone", "?") if isinstance(data, dict) else "?"
            _config.update(mtime=mtime, zone=str(zone), rules=rules)
    except (OSError, ValueError, RecursionError):
        pass  # keep the last good config; a half-written or hostile file never takes the proxy down
    return _config


def gateways(routes: str = ROUTES) -> list[IPAddress]:
    """The container's IPv4 gateways (the Docker bridge: the host), from the kernel's routing table."""
    found: list[IPAddress] = []
    try:
        with open(routes, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[2] != "00000000":
                    found.append(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    except (OSError, ValueError):
        pass
    return found


def special(address: IPAddress, gateway_addresses: list[IPAddress]) -> list[IPNetwork]:
    """The reserved ranges address falls in (empty: an ordinary destination)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    hits = [n for n in SPECIAL_RANGES if address.version == n.version and address in n]
    hits += [ipaddress.ip_network(g) for g in gateway_addresses if g == address]
    return hits


def reachable(address_text: str, rules: list[dict[str, Any]], port: int,
              gateway_addresses: list[IPAddress]) -> bool:
    """False for an address in a reserved range, unless a CIDR rule for the port lies inside that range."""
    try:
        address = ipaddress.ip_address(address_text.split("%")[0])
    except ValueError:
        return False
    ranges = special(address, gateway_addresses)
    if not ranges:
        return True
    return any(port in r["ports"] and "cidr" in r and address in r["cidr"] and r["cidr"].version == rng.version
               and r["cidr"].subnet_of(rng) for r in rules for rng in ranges)


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "ts": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def decide(host: str, port: int) -> tuple[bool, list[str]]:
    """(allowed, addresses to connect to). Fails closed on any resolution problem."""
    cfg = load_config()
    host = host.strip("[]").lower().rstrip(".")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False, []
    resolved = sorted({str(i[4][0]) for i in infos})
    # Resolve first, then judge the addresses: a permitted name may point at loopback or the host.
    own_gateways = gateways()
    addresses = [a for a in resolved if reachable(a, cfg["rules"], port, own_gateways)]
    if not addresses:
        return False, resolved
    for rule in cfg["rules"]:
        if port not in rule["ports"]:
            continue
        if "host" in rule:
            pattern = rule["host"]
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True, addresses
        else:
            net = rule["cidr"]
            inside = [a for a in addresses if ipaddress.ip_address(a.split("%")[0]) in net]
            if inside and len(inside) == len(addresses):
                return True, inside
    return False, resolved


async def refuse(writer: asyncio.StreamWriter, client: str, host: str, port: int, why: str) -> None:
    zone = load_config()["zone"]
    emit("refused", zone=zone, client=client, host=host, port=port, reason=why)
    body = f"onexd egress proxy: {host}:{port} is not allowed in zone {zone} ({why})\n".encode()
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    client = (writer.get_extra_info("peername") or ("?",))[0]
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        writer.close()
        return
    if method.upper() == "CONNECT":
        host, _, port_text = target.rpartition(":")
        rest = b""
    else:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await refuse(writer, client, target[:100], 0, "only absolute http:// URLs and CONNECT are proxied")
            return
        host, port_text = url.hostname, str(url.port or 80)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = [h for h in lines[1:] if h and not h.lower().startswith(("proxy-", "connection:"))]
        rest = (f"{method} {path} {version}\r\n" + "\r\n".join(headers) + "\r\nConnection: close\r\n\r\n").encode()
    try:
        port = int(port_text)
    except ValueError:
        await refuse(writer, client, host, 0, "bad port")
        return
    allowed, addresses = await decide(host, port)
    if not allowed:
        await refuse(writer, client, host, port, "not in the allowlist" if addresses else "cannot resolve")
        return
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(addresses[0], port), 10)
    except (OSError, TimeoutError):
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    emit("allowed", zone=load_config()["zone"], client=client, host=host, port=port)
    if method.upper() == "CONNECT":
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
    else:
        up_writer.write(rest)
        await up_writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main() -> None:
    load_config()
    server = await asyncio.start_server(handle, "0.0.0.0", PORT, limit=MAX_HEADER)  # noqa: S104 - zone network only
    emit("listening", port=PORT, zone=_config["zone"])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
