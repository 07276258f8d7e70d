"""Real receivers for shipping tests, on loopback, started by the test with configuration files of their own:
Debian's rsyslogd, and an HTTP server (http.server) that records what it really received; a test CA."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import shutil
import socket
import ssl
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
# What a receiver parsed, one line per message: a proof of parsing (see parsed_as), MSGID, structured data, message.
FIELDS = re.compile(r'^(?P<parsed>[^|]*)\|(?P<msgid>[^|]*)\|(?P<sd>\[.*?[^\\]\])\|(?P<msg>.*)$')
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


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a receiver: SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_path(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)


# --- a test CA ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, label: str, host: str = "localhost") -> CaFiles:
    """A CA, a server certificate for `host` and 127.0.0.1 and a client certificate signed by it, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    paths = CaFiles(*(directory / f"{label}-{what}.pem" for what in ("ca", "cert", "key", "client-cert",
                                                                     "client-key")))
    paths.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cert_file, key_file, name, usage in (
            (paths.cert_file, paths.key_file, host, x509.oid.ExtendedKeyUsageOID.SERVER_AUTH),
            (paths.client_cert_file, paths.client_key_file, "onexd-client", x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_file.chmod(0o600)
    return paths


# --- syslog receivers ------------------------------------------------------------------------------------


class _SyslogReceiver:
    """What rsyslog and syslog-ng share here: stop on exit, and read back what they parsed."""

    out: Path
    proc: subprocess.Popen[bytes] | None

    def parsed_as(self, event: dict[str, Any]) -> str:
        """The first field of a record when the receiver parsed `event` as RFC 5424."""
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)

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


# --- rsyslogd --------------------------------------------------------------------------------------------


@dataclass
class Rsyslog(_SyslogReceiver):
    """rsyslogd in the foreground with a config of the test's own; every message it parses goes to `out`."""

    directory: Path
    tcp_port: int | None = None
    udp_port: int | None = None
    tls: CaFiles | None = None
    max_message_size: str = "256k"
    unix_socket: Path | None = None
    require_client_cert: bool = False
    out: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def parsed_as(self, event: dict[str, Any]) -> str:
        # %protocol-version%: 1 for RFC 5424; on the local socket, %programname% as the local parser found it
        return "onexd" if self.unix_socket is not None else "1"

    def config(self) -> str:
        lines = [f'global(workDirectory="{self.directory}" maxMessageSize="{self.max_message_size}")']
        if self.tls is not None:
            lines.append(f'global(defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{self.tls.ca_file}" '
                         f'defaultNetstreamDriverCertFile="{self.tls.cert_file}" '
                         f'defaultNetstreamDriverKeyFile="{self.tls.key_file}")')
            auth = "x509/certvalid" if self.require_client_cert else "anon"
            lines.append('module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" '
                         f'streamDriver.authMode="{auth}")')
        elif self.tcp_port is not None:
            lines.append('module(load="imtcp")')
        if self.tcp_port is not None:
            lines.append(f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")')
        if self.udp_port is not None:
            lines += ['module(load="imudp")', f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}")']
        if self.unix_socket is not None:  # rsyslog's own local-socket input and parser, as on /dev/log
            lines += ['module(load="imuxsock" sysSock.use="off")',
                      f'input(type="imuxsock" socket="{self.unix_socket}" createPath="on")',
                      'template(name="parsed" type="string" string="%programname%|%procid%|[-]|%msg%\\n")']
        else:
            lines.append('template(name="parsed" type="string" '
                         'string="%protocol-version%|%msgid%|%structured-data%|%msg%\\n")')
        lines += [
                  f'action(type="omfile" file="{self.out}" template="parsed")']
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Rsyslog:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.out = self.directory / "received.log"
        conf = self.directory / "rsyslog.conf"
        conf.write_text(self.config())
        with (self.directory / "stderr").open("wb") as err:
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.directory / "pid")],
                                         stdout=subprocess.DEVNULL, stderr=err)
        if self.tcp_port is not None:
            wait_listening(self.tcp_port)
        elif self.unix_socket is not None:
            _wait_path(self.unix_socket)
        else:
            time.sleep(0.5)  # UDP only: nothing to connect to; rsyslog binds within milliseconds
        return self


# --- syslog-ng -------------------------------------------------------------------------------------------

SYSLOG_NG_ROOT = Path(__file__).resolve().parents[2] / ".venv" / "receivers" / "syslog-ng"


@dataclass
class SyslogNg(_SyslogReceiver):
    """Debian's syslog-ng (unpacked by `make receivers`) in the foreground with a config of the test's own:
    `syslog()` (RFC 6587 octet counting, optionally TLS) on octet_port, `network(flags(syslog-protocol))`
    (RFC 5424, LF-framed) on lf_port."""

    directory: Path
    octet_port: int
    lf_port: int
    tls: CaFiles | None = None
    unix_socket: Path | None = None
    out: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def parsed_as(self, event: dict[str, Any]) -> str:
        # ${.SDATA.onexd@0.seq}: the SD parameter as syslog-ng parsed it; on the local socket, ${PROGRAM}
        return "onexd" if self.unix_socket is not None else str(event["seq"])

    def config(self) -> str:
        octet = f'syslog(ip("127.0.0.1") port({self.octet_port}) transport("tcp"))'
        if self.tls is not None:
            octet = (f'syslog(ip("127.0.0.1") port({self.octet_port}) transport("tls") '
                     f'tls(key-file("{self.tls.key_file}") cert-file("{self.tls.cert_file}") '
                     f"peer-verify(optional-untrusted)))")
        head = "@version: 3.38\noptions { keep-hostname(yes); log-msg-size(262144); };\n"
        if self.unix_socket is not None:  # what system() reads /dev/log with on Linux
            return (head + f'source s_local {{ unix-dgram("{self.unix_socket}"); }};\n'
                    f'destination d_out {{ file("{self.out}" template("${{PROGRAM}}|${{PID}}|[-]|${{MSG}}\\n")); }};\n'
                    "log { source(s_local); destination(d_out); };\n")
        return (head + f'source s_net {{ {octet}; network(ip("127.0.0.1") port({self.lf_port}) transport("tcp") '
                f"flags(syslog-protocol)); }};\n"
                f'destination d_out {{ file("{self.out}" template("${{.SDATA.onexd@0.seq}}|${{MSGID}}|${{SDATA}}|'
                f'${{MSG}}\\n")); }};\nlog {{ source(s_net); destination(d_out); }};\n')

    def __enter__(self) -> SyslogNg:
        binary = SYSLOG_NG_ROOT / "usr/sbin/syslog-ng"
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run `make receivers`")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.out = self.directory / "received.log"
        conf = self.directory / "syslog-ng.conf"
        conf.write_text(self.config())
        libs = [SYSLOG_NG_ROOT / p for p in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib/syslog-ng")]
        env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": ":".join(str(p) for p in libs)}
        d = self.directory
        with (d / "stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                [str(binary), "-F", "--no-caps", "-f", str(conf),
                 f"--module-path={SYSLOG_NG_ROOT}/usr/lib/syslog-ng/3.38", f"--persist-file={d}/persist",
                 f"--pidfile={d}/pid", f"--control={d}/ctl"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        if self.unix_socket is not None:
            _wait_path(self.unix_socket)
        else:
            wait_listening(self.lf_port)
            wait_listening(self.octet_port)
        return self



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

    def __init__(self, mode: str = "ok", delay_s: float = 0.0, tls: CaFiles | None = None) -> None:
        self.mode, self.delay_s = mode, delay_s
        self.received: list[Received] = []
        self.gets: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
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
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seqs(self) -> list[int]:
        return [e["seq"] for r in self.received for e in r.body["events"]]



# --- Debian's webhook -------------------------------------------------------------------------------------

WEBHOOK = shutil.which("webhook") or "/usr/bin/webhook"


class DebianWebhook:
    """Debian's `webhook` (github.com/adnanh/webhook) with a hooks.json of the test's own: a hook `onexd` that
    requires `Authorization: <token>` (401 otherwise) and runs a script appending each batch to `out`."""

    def __init__(self, directory: Path, token: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.out, self.port = directory, directory / "batches.jsonl", free_port()
        script = directory / "store-batch"
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{self.out}"\n')
        script.chmod(0o755)
        hooks = [{"id": "onexd", "execute-command": str(script), "http-methods": ["POST"],
                  "include-command-output-in-response": True, "include-command-output-in-response-on-error": True,
                  "pass-arguments-to-command": [{"source": "entire-payload"}],
                  "trigger-rule-mismatch-http-response-code": 401,
                  "trigger-rule": {"match": {"type": "value", "value": token,
                                             "parameter": {"source": "header", "name": "Authorization"}}}}]
        self.hooks = directory / "hooks.json"
        self.hooks.write_text(json.dumps(hooks))
        self.url = f"http://127.0.0.1:{self.port}/hooks/onexd"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DebianWebhook:
        with (self.directory / "stderr").open("wb") as err:
            self.proc = subprocess.Popen([WEBHOOK, "-hooks", str(self.hooks), "-ip", "127.0.0.1",
                                          "-port", str(self.port)], stdout=err, stderr=err)
        wait_listening(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)

    def seqs(self) -> list[int]:
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        return [e["seq"] for line in lines for e in json.loads(line)["events"]]


# --- systemd-journald -------------------------------------------------------------------------------------

JOURNALD = "/lib/systemd/systemd-journald"


class Journald:
    """Debian's systemd-journald in a private mount namespace (its own tmpfs /run and /var/log/journal, and a
    journald.conf of the test's own: volatile storage, no kernel log, no forwarding), so the host's journal is
    never touched. Its sockets are reached through /proc/PID/root; entries are read back with journalctl."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.conf = directory / "journald.conf"
        self.conf.write_text("[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n"
                             "ForwardToConsole=no\nForwardToWall=no\nAudit=no\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root")

    @property
    def native_socket(self) -> Path:
        return self.root / "run/systemd/journal/socket"

    @property
    def syslog_socket(self) -> Path:
        return self.root / "run/systemd/journal/dev-log"

    def __enter__(self) -> Journald:
        script = ("mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log/journal && "
                  f"mount --bind {self.conf} /etc/systemd/journald.conf && exec {JOURNALD}")
        with (self.directory / "stderr").open("wb") as err:
            self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                         stdout=err, stderr=err)
        _wait_path(self.native_socket)
        _wait_path(self.syslog_socket)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)

    def entries(self, identifier: str = "onexd") -> list[dict[str, Any]]:
        out = subprocess.run(["journalctl", f"--root={self.root}", "-o", "json", "--no-pager",
                              f"SYSLOG_IDENTIFIER={identifier}"], capture_output=True, text=True, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]
