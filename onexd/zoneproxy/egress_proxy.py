"""onexd's egress proxy: HTTP CONNECT and plain HTTP, allowing only a zone's allowlist. Standard library only:
it runs inside the runner-python image, locked down like a job, as `python3 /app/proxy/egress_proxy.py`.

The allowlist is re-read from /etc/onexd-zone/config.json whenever it changes, so a policy reload reaches new
connections within a second. Host names are resolved here, by the proxy: a CIDR entry allows a destination whose
address is inside it; a host entry allows that exact name (or, with `*.`, its subdomains). Every refusal is one
JSON line on stdout: onexd collects them for the audit trail.
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


def load_config() -> dict[str, Any]:
    try:
        mtime = os.stat(CONFIG).st_mtime
    except OSError:
        return _config
    if mtime != _config["mtime"]:
        with open(CONFIG, encoding="utf-8") as f:
            data = json.load(f)
        _config.update(mtime=mtime, zone=data.get("zone", "?"), rules=data.get("egress", []))
    return _config


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
    addresses = sorted({str(i[4][0]) for i in infos})
    for rule in cfg["rules"]:
        if port not in rule.get("ports", []):
            continue
        if "host" in rule:
            pattern = rule["host"].lower()
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True, addresses
        elif "cidr" in rule:
            net = ipaddress.ip_network(rule["cidr"], strict=False)
            inside = [a for a in addresses if ipaddress.ip_address(a) in net]
            if inside and len(inside) == len(addresses):
                return True, inside
    return False, addresses


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
