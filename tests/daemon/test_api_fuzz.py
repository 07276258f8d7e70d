"""The standing API fuzzer: schemathesis against the daemon's own /openapi.json, on the fake runtime, through a
loopback TCP forwarder to the Unix socket. Valid and invalid requests for every operation, a fixed budget
(FUZZ_EXAMPLES per operation); any 5xx, or an answer slower than FUZZ_TIMEOUT_S (a hang), fails."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.daemon.conftest import Daemon, _finish, make_daemon

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES = 100
FUZZ_TIMEOUT_S = 10.0


class Forwarder:
    """127.0.0.1:PORT → the daemon's Unix socket, one pair of pumping threads per connection."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Both directions of one connection, until either side closes; then both sockets are closed."""
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            upstream.connect(str(self.target))
            peers = {client: upstream, upstream: client}
            try:
                while not self._stop.is_set():
                    ready, _, _ = select.select(list(peers), [], [], 0.5)
                    for src in ready:
                        data = src.recv(65536)
                        if not data:
                            return
                        peers[src].sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Forwarder]]:
    d = make_daemon(tmp_path_factory.mktemp("fuzz"), backend="fake", with_testers=True)
    d.start()
    forwarder = Forwarder(d.socket)
    yield d, forwarder
    forwarder.close()
    _finish(d)


def _numeric(value: object) -> bool:
    try:
        return value is not None and float(str(value)) > 0
    except ValueError:
        return False


def _cases() -> list[tuple[Any, GenerationMode]]:
    """Every operation with valid requests; those with a query or a body also with invalid ones (a free-form
    path parameter has no invalid value)."""
    from onexd.api.openapi import document

    doc = json.loads(json.dumps(document()))
    loaded = schemathesis.openapi.from_dict(doc)
    out = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        out.append((operation, GenerationMode.POSITIVE))
        raw = doc["paths"][operation.path][operation.method.lower()]
        if raw.get("requestBody") or any(p.get("in") != "path" for p in raw.get("parameters", [])):
            out.append((operation, GenerationMode.NEGATIVE))
    return out


@pytest.mark.parametrize(("operation", "mode"), _cases(),
                         ids=lambda v: v.value if isinstance(v, GenerationMode) else f"{v.method.upper()} {v.path}")
def test_api_fuzz_never_5xx_or_hangs(operation: Any, mode: GenerationMode,
                                     fuzz_daemon: tuple[Daemon, Forwarder]) -> None:
    """Every generated request for the operation (valid, or invalid in mode negative) is answered within
    FUZZ_TIMEOUT_S with a status below 500, and the daemon stays up."""
    d, forwarder = fuzz_daemon
    base_url = f"http://127.0.0.1:{forwarder.port}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        if isinstance(case.query, dict) and _numeric(case.query.get("wait")):
            case.query["wait"] = 0  # a long poll waits as asked, by design: the budget is spent on other inputs
        response = case.call(base_url=base_url, timeout=FUZZ_TIMEOUT_S)
        assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                            response.text[:500])

    run()
    assert d.proc is not None and d.proc.poll() is None
