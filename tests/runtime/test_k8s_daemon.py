"""A real `onexd serve` with `runtime.backend: kubernetes`, pointed at the fake API server on loopback.

Jobs go through the socket, become Jobs on the "cluster", and their records come back; the fake kubelet runs
the example node's real code from the ConfigMap onexd created, with the input the attach session delivered.
No Docker engine is used (the daemon never talks to one with this backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, _finish, make_daemon
from tests.runtime.k8s_fake_server import FakeKubernetes, Outcome

pytestmark = pytest.mark.integration


@pytest.fixture
def k8s_daemon(tmp_path: Path, fake: FakeKubernetes) -> Iterator[Callable[[], Daemon]]:
    made: list[Daemon] = []

    def start() -> Daemon:
        kubeconfig = fake.write_kubeconfig(tmp_path)
        d = make_daemon(tmp_path, backend="kubernetes",
                        extra={"runtime": {"backend": "kubernetes",
                                           "kubernetes": {"namespace": "onexd", "kubeconfig": kubeconfig}}})
        made.append(d)
        d.start()
        return d

    yield start
    for d in made:
        _finish(d)


def _wait(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _running_pods(fake: FakeKubernetes) -> list[str]:
    return [name for name in fake.names("pods")
            if (fake.get("pods", name) or {}).get("status", {}).get("phase") == "Running"]


def test_an_example_node_runs_as_a_pod_and_is_recorded(k8s_daemon: Callable[[], Daemon],
                                                        fake: FakeKubernetes) -> None:
    """hello through the socket: its code arrives as a ConfigMap, its input on stdin; the record is kept and
    names the policy; every object is deleted after."""
    fake.script = lambda pod: Outcome(program=True)
    d = k8s_daemon()
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "cluster"}})
    assert code == 200, record
    assert record["status"] == "succeeded" and record["exitCode"] == 0, record
    assert record["stdout"] == '{"greeting": "Hello, cluster!"}\n'
    code, again = d.curl("GET", f"/v1/jobs/{record['id']}")
    assert code == 200 and again["status"] == "succeeded" and again["policy"]["digest"] == record["policy"]["digest"]
    created = [o for _, e, o in fake.events["jobs"] if e == "ADDED"]
    assert created[-1]["metadata"]["labels"]["onexd.job"] == record["id"]
    assert created[-1]["metadata"]["annotations"]["onexd.policy-digest"] == record["policy"]["digest"]
    _wait(lambda: fake.names("jobs") == [] and fake.names("configmaps") == [] and fake.names("pods") == [])


def test_cancel_through_the_socket_deletes_the_job(k8s_daemon: Callable[[], Daemon], fake: FakeKubernetes) -> None:
    """DELETE /v1/jobs/{id} on a running Pod: the Job is deleted and the record says cancelled."""
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"working\n")
    d = k8s_daemon()
    code, record = d.curl("POST", "/v1/jobs", {"node": "hello", "input": {"name": "x"}})
    assert code == 202, record
    _wait(lambda: bool(_running_pods(fake)))
    assert d.curl("DELETE", f"/v1/jobs/{record['id']}")[0] in (200, 202)
    _wait(lambda: d.curl("GET", f"/v1/jobs/{record['id']}")[1]["status"] == "cancelled")
    _wait(lambda: fake.names("jobs") == [] and fake.names("pods") == [])


def test_a_job_past_its_timeout_is_timed_out(k8s_daemon: Callable[[], Daemon], fake: FakeKubernetes) -> None:
    """A request's timeoutSeconds becomes activeDeadlineSeconds; a Pod that outlives it is `timed_out`."""
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"")
    d = k8s_daemon()
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "x"},
                                                         "timeoutSeconds": 1})
    assert code == 200 and record["status"] == "timed_out", record
    job = next(o for _, e, o in fake.events["jobs"] if e == "ADDED")
    assert job["spec"]["activeDeadlineSeconds"] == 1
    _wait(lambda: fake.names("jobs") == [])


def test_the_daemon_reaps_leftovers_at_start(k8s_daemon: Callable[[], Daemon], fake: FakeKubernetes) -> None:
    """onexd-managed objects a previous daemon left are deleted at start; others' objects stay."""
    fake.put("secrets", {"metadata": {"name": "left", "namespace": "onexd", "labels": {"onexd.managed": "true"}}})
    fake.put("secrets", {"metadata": {"name": "theirs", "namespace": "onexd"}})
    k8s_daemon()
    assert fake.names("secrets") == ["theirs"]
