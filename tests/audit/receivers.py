"""Real receivers for shipping tests, on loopback, started by the test with configuration files of their own:
Debian's rsyslogd, and an HTTP server (http.server) that records what it really received; a test CA."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
# What rsyslog parsed, one line per message: protocol version (1 = RFC 5424), MSGID, structured data, message.
FIELDS = re.compile(r'^(?P<version>\d+)\|(?P<msgid>[^|]*)\|(?P<sd>\[.*?[^\\]\])\|(?P<msg>.*)$')
SEQ = re.compile(r'seq="(\d+)"')


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# --- a test CA ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCa:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, label: str, host: str = "localhost") -> TestCa:
    """A CA and a server certificate for `host` and 127.0.0.1 signed by it, as PEM files in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = TestCa(directory / f"{label}-ca.pem", directory / f"{label}-cert.pem", directory / f"{label}-key.pem")
    paths.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    paths.key_file.chmod(0o600)
    return paths


# --- rsyslogd --------------------------------------------------------------------------------------------


@dataclass
class Rsyslog:
    """rsyslogd in the foreground with a config of the test's own; every message it parses goes to `out`."""

    directory: Path
    tcp_port: int | None = None
    udp_port: int | None = None
    tls: TestCa | None = None
    out: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def config(self) -> str:
        lines = [f'global(workDirectory="{self.directory}" maxMessageSize="256k")']
        if self.tls is not None:
            lines.append(f'global(defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{self.tls.ca_file}" '
                         f'defaultNetstreamDriverCertFile="{self.tls.cert_file}" '
                         f'defaultNetstreamDriverKeyFile="{self.tls.key_file}")')
            lines.append('module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" '
                         'streamDriver.authMode="anon")')
        elif self.tcp_port is not None:
            lines.append('module(load="imtcp")')
        if self.tcp_port is not None:
            lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")')
        if self.udp_port is not None:
            lines += ['module(load="imudp")', f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}")']
        lines += ['template(name="parsed" type="string" '
                  'string="%protocol-version%|%msgid%|%structured-data%|%msg%\\n")',
                  f'action(type="omfile" file="{self.out}" template="parsed")']
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Rsyslog:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.out = self.directory / "received.log"
        conf = self.directory / "rsyslog.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.directory / "pid")],
                                     stdout=subprocess.DEVNULL, stderr=(self.directory / "stderr").open("wb"))
        if self.tcp_port is not None:
            wait_listening(self.tcp_port)
        else:
            time.sleep(0.5)  # UDP only: nothing to connect to; rsyslog binds within milliseconds
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def records(self) -> list[dict[str, str]]:
        if not self.out.exists():
            return []
        found = []
        for line in self.out.read_text(errors="replace").splitlines():
            match = FIELDS.match(line)
            found.append(match.groupdict() if match else {"raw": line})
        return found

    def seqs(self) -> list[int]:
        return [int(m.group(1)) for r in self.records() if "sd" in r and (m := SEQ.search(r["sd"]))]

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seqs = self.seqs()
            if len(set(seqs)) >= count:
                return seqs
            time.sleep(0.1)
        return self.seqs()


# --- an HTTP receiver ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class WebhookReceiver:
    """A real HTTP server on loopback. mode: `ok` (204), `redirect` (302 to /elsewhere, which answers 200),
    `fail` (503); delay_s before answering. Records every POST it got."""

    def __init__(self, mode: str = "ok", delay_s: float = 0.0) -> None:
        self.mode, self.delay_s = mode, delay_s
        self.received: list[Received] = []
        self.gets: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                return

            def do_GET(self) -> None:
                receiver.gets.append(self.path)
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                time.sleep(receiver.delay_s)
                if receiver.mode == "redirect" and self.path != "/elsewhere":
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.received.append(Received(self.path, dict(self.headers.items()), json.loads(raw),
                                                  time.monotonic()))
                self.send_response(503 if receiver.mode == "fail" else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seqs(self) -> list[int]:
        return [e["seq"] for r in self.received for e in r.body["events"]]

