"""KubernetesRuntime against the fake API server on loopback (the official client, unmodified, over HTTP).

No real cluster runs here: these tests pin the client flow (create, resume, attach, watch, logs, delete, reap)
and the mapping of what a cluster reports onto onexd's statuses and errors.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onexd.engine.decide import decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import HostPaths, translate
from onexd.errors import KubernetesUnsupported, RuntimeFailure
from onexd.identity.principal import parse_subject
from onexd.runtime.kubernetes import KubernetesRuntime, KubernetesSettings
from onexd.spec import ContainerSpec
from tests.conftest import EXAMPLES
from tests.engine.test_translate import _snapshot
from tests.runtime.k8s_fake_server import FakeKubernetes, Outcome

# The official client over HTTP against a fake API server whose pods progress in real time (watch windows,
# reconnect backoff, a fake kubelet that runs programs): integration tests.
pytestmark = pytest.mark.integration

JOB_ID = "fedcba9876543210fedcba9876543210"


def _runtime(fake: FakeKubernetes, tmp_path: Path, timeout_s: float = 10.0,
             clock: Callable[[], float] = time.monotonic) -> KubernetesRuntime:
    return KubernetesRuntime(KubernetesSettings(namespace="onexd", kubeconfig=fake.write_kubeconfig(tmp_path),
                                                request_timeout_s=timeout_s), clock=clock)


def _spec(tmp_path: Path, node: str = "hello", job_id: str = JOB_ID, secret: bytes | None = None) -> ContainerSpec:
    snapshot = _snapshot(EXAMPLES)
    request = JobRequest(node=node, input={"name": "k8s"} if node == "hello" else {"text": "a"})
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    code = tmp_path / "code"
    for rel, data in snapshot.nodes[node].source_files.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_bytes(data)
    secrets_dir = None
    if secret is not None:
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir()
        (secrets_dir / "api-token").write_bytes(secret)
    paths = HostPaths(node_source=str(code), secrets_dir=str(secrets_dir) if secrets_dir else None)
    return translate(snapshot, decision, request, job_id, paths)


def _nothing_left(fake: FakeKubernetes) -> None:
    for plural in ("jobs", "pods", "secrets", "configmaps"):
        assert fake.names(plural) == [], plural


def test_a_job_runs_with_its_input_on_stdin_and_leaves_nothing(fake: FakeKubernetes, tmp_path: Path) -> None:
    """The input reaches the program on stdin through attach; its log is the output; every object goes after."""
    fake.script = lambda pod: Outcome(output=lambda stdin: b"got " + stdin)
    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b'{"name":"k8s"}\n')
    assert result.status == "succeeded" and result.exit_code == 0
    assert result.stdout == b'got {"name":"k8s"}\n' and not result.truncated
    _nothing_left(fake)
    # Created suspended, the owned ConfigMap next, then resumed; deleted in the foreground.
    posts = [path for method, path in fake.requests if method in ("POST", "PATCH")]
    assert [p.rsplit("/", 1)[-1] for p in posts] == ["networkpolicies", "networkpolicies", "jobs", "configmaps",
                                                     f"onexd-job-{JOB_ID}"]
    assert any(m == "GET" and p.endswith("/attach") for m, p in fake.requests)
    options = [json.loads(p) for m, p in fake.requests if m == "DELETE-OPTIONS" and "propagationPolicy" in p]
    assert options and options[0]["propagationPolicy"] == "Foreground"
    assert fake.names("networkpolicies") == ["onexd-default-deny", "onexd-zone-none"]


def test_exit_codes_map_to_failed(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A non-zero exit is `failed` with its code and reason."""
    fake.script = lambda pod: Outcome(exit_code=3, output=lambda stdin: b"bad\n")
    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n")
    assert (result.status, result.exit_code, result.stdout) == ("failed", 3, b"bad\n")
    assert "code 3" in result.reason
    _nothing_left(fake)


def test_oom_killed_pod_is_oom_killed(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A container the kubelet reports as OOMKilled (137) is `oom_killed`."""
    fake.script = lambda pod: Outcome(exit_code=137, reason="OOMKilled", output=lambda stdin: b"")
    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n")
    assert result.status == "oom_killed" and result.exit_code == 137
    _nothing_left(fake)


def test_the_jobs_deadline_is_timed_out(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A pod that outlives activeDeadlineSeconds: the Job fails with DeadlineExceeded (the controller deletes
    the pod) and the job is `timed_out`. onexd's own clock is frozen here, so only the cluster's deadline acts."""
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"working\n")
    spec = _spec(tmp_path)
    spec = dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, timeout_s=1))
    runtime = _runtime(fake, tmp_path, clock=lambda: 0.0)
    result = runtime.run(spec, b"{}\n")
    assert result.status == "timed_out" and "1s timeout" in result.reason
    job = [o for _, e, o in fake.events["jobs"] if e == "MODIFIED" and o["status"].get("conditions")]
    assert job and job[-1]["status"]["conditions"][0]["reason"] == "DeadlineExceeded"
    _nothing_left(fake)


def test_cancel_deletes_the_job(fake: FakeKubernetes, tmp_path: Path) -> None:
    """Cancelling a running job deletes it with foreground propagation and reports `cancelled`."""
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"started\n")
    cancel = threading.Event()
    seen: list[bytes] = []

    def on_output(stream: int, data: bytes) -> None:
        seen.append(data)
        cancel.set()

    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n", cancel, on_output)
    assert result.status == "cancelled" and result.stdout == b"started\n" and seen == [b"started\n"]
    _nothing_left(fake)


def test_output_is_kept_within_the_budget(fake: FakeKubernetes, tmp_path: Path) -> None:
    """Output beyond outputBytes is cut (the kubelet is asked for limit+1 bytes) and flagged truncated."""
    spec = _spec(tmp_path)
    limit = spec.limits.output_limit_bytes
    fake.script = lambda pod: Outcome(output=lambda stdin: b"x" * (limit * 3))
    result = _runtime(fake, tmp_path).run(spec, b"{}\n")
    assert result.status == "succeeded" and result.truncated and len(result.stdout) == limit
    assert any(f"limitBytes={limit + 1}" in p or p.endswith("/log") for _, p in fake.requests)


def test_a_pod_that_cannot_pull_its_image_is_an_error(fake: FakeKubernetes, tmp_path: Path) -> None:
    """ErrImagePull fails the job at once with the kubelet's reason, and the Job is deleted."""
    fake.script = lambda pod: Outcome(waiting="ErrImagePull")
    with pytest.raises(RuntimeFailure, match="ErrImagePull"):
        _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n")
    _nothing_left(fake)


def test_api_errors_become_runtime_failures(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A refused create (403) is a RuntimeFailure naming the action and the API's reason; nothing is left."""
    fake.fail[("POST", "jobs")] = 403
    with pytest.raises(RuntimeFailure, match=r"creating Job onexd-job-.*403 Forbidden"):
        _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n")
    _nothing_left(fake)


def test_a_failed_owned_object_create_deletes_the_job(fake: FakeKubernetes, tmp_path: Path) -> None:
    """If the Secret cannot be created after the Job, the Job is deleted, never resumed."""
    fake.fail[("POST", "secrets")] = 500
    with pytest.raises(RuntimeFailure, match="500"):
        _runtime(fake, tmp_path).run(_spec(tmp_path, "wordcount", secret=b"s3cret"), b"{}\n")
    _nothing_left(fake)
    assert not any(m == "PATCH" for m, _ in fake.requests)


def test_a_stalled_api_times_out(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A request the API server does not answer within the request timeout is a RuntimeFailure, not a hang."""
    fake.stall[("POST", "jobs")] = 8.0
    began = time.monotonic()
    with pytest.raises(RuntimeFailure, match="unreachable"):
        _runtime(fake, tmp_path, timeout_s=0.5).run(_spec(tmp_path), b"{}\n")
    assert time.monotonic() - began < 6


def test_a_broken_watch_reconnects(fake: FakeKubernetes, tmp_path: Path) -> None:
    """One failed watch request is retried (bounded), and the job still completes."""
    fake.fail[("GET", "pods")] = 500
    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b"{}\n")
    assert result.status == "succeeded"


def test_secrets_are_a_secret_owned_by_the_job(fake: FakeKubernetes, tmp_path: Path) -> None:
    """The secret is a Secret volume (0400), owned by the Job, never in the Job or its env; deleted after."""
    seen: dict[str, object] = {}

    def script(pod: dict[str, object]) -> Outcome:
        secret = fake.get("secrets", f"onexd-job-{JOB_ID}-secrets")
        job = fake.get("jobs", f"onexd-job-{JOB_ID}")
        assert secret is not None and job is not None
        seen["secret"], seen["job"] = json.loads(json.dumps(secret)), json.dumps(job)
        return Outcome()

    fake.script = script
    result = _runtime(fake, tmp_path).run(_spec(tmp_path, "wordcount", secret=b"s3cret-value"), b"{}\n")
    assert result.status == "succeeded"
    secret = seen["secret"]
    assert isinstance(secret, dict)
    assert base64.b64decode(secret["data"]["api-token"]) == b"s3cret-value"
    job = json.loads(str(seen["job"]))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert "s3cret" not in str(seen["job"]) and "czNjcmV0" not in str(seen["job"])
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    assert volume["secret"]["defaultMode"] == 0o400
    _nothing_left(fake)


def test_capability_adds_beyond_restricted_are_refused(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A profile adding e.g. CHOWN is refused before anything is created."""
    spec = dataclasses.replace(_spec(tmp_path), cap_add=("CHOWN",))
    with pytest.raises(KubernetesUnsupported, match="NET_BIND_SERVICE"):
        _runtime(fake, tmp_path).run(spec, b"{}\n")
    assert not [m for m, _ in fake.requests if m == "POST"]


def test_reap_removes_managed_objects_only(fake: FakeKubernetes, tmp_path: Path) -> None:
    """At start, onexd-managed Jobs, Secrets and ConfigMaps of the namespace go; others' objects stay."""
    managed = {"onexd.managed": "true"}
    fake.put("secrets", {"metadata": {"name": "left-secret", "namespace": "onexd", "labels": managed}})
    fake.put("configmaps", {"metadata": {"name": "left-files", "namespace": "onexd", "labels": managed}})
    fake.put("secrets", {"metadata": {"name": "someone-elses", "namespace": "onexd"}})
    fake.put("jobs", {"metadata": {"name": "left-job", "namespace": "onexd", "labels": managed},
                      "spec": {"suspend": True, "template": {"metadata": {}, "spec": {}}}})
    removed = _runtime(fake, tmp_path).reap()
    assert {"job/left-job", "secret/left-secret", "configmap/left-files"} <= set(removed)
    assert fake.names("secrets") == ["someone-elses"] and fake.names("jobs") == []


def test_ping_reports_an_unreachable_api(tmp_path: Path) -> None:
    """No API server: ping raises RuntimeFailure saying so."""
    kubeconfig = tmp_path / "kubeconfig"
    server = FakeKubernetes()
    kubeconfig.write_text(server.kubeconfig().replace(":0", ":1"))  # a loopback port nobody listens on
    runtime = KubernetesRuntime(KubernetesSettings(namespace="onexd", kubeconfig=str(kubeconfig),
                                                   request_timeout_s=2))
    with pytest.raises(RuntimeFailure, match="unreachable"):
        runtime.ping()


def test_an_egress_zone_gets_its_proxy_and_allowlist_updates(fake: FakeKubernetes, tmp_path: Path) -> None:
    """An egress job: the zone's proxy is started as Deployment + Service + ConfigMaps + NetworkPolicy, the job
    runs pointed at the proxy's Service, a changed allowlist reaches the proxy's ConfigMap with the next job,
    refusals name the job by its Pod's IP, and stopping the zone removes every proxy object."""
    from onexd.jobs.runner import JobRunner
    from onexd.jobs.zones import EgressZones
    from tests.runtime.test_k8s_manifests import _egress_snapshot

    def script(pod: dict[str, Any]) -> Outcome:
        if pod["metadata"]["labels"].get("onexd.role") == "proxy":
            return Outcome(hang=True, output=lambda stdin: b'{"event": "listening"}\n')
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        return Outcome(output=lambda stdin: env["HTTPS_PROXY"].encode() + b"\n")

    fake.script = script
    runtime = _runtime(fake, tmp_path)
    zones = EgressZones(runtime, tmp_path / "state", "bridge")
    runner = JobRunner(runtime, tmp_path / "state", tmp_path / "staging", zones=zones)
    snapshot = _egress_snapshot(tmp_path / "one")
    request = JobRequest(profile="fetch", command=("python3", "-c", "pass"))
    outcome = runner.run(snapshot, parse_subject("UnixUser:root"), request)
    assert outcome.record is not None and outcome.record.status == "succeeded", outcome.record
    assert outcome.record.stdout == "http://onexd-proxy-web:3128\n"
    assert fake.names("deployments") == ["onexd-proxy-web"] and fake.names("services") == ["onexd-proxy-web"]
    assert "onexd-proxy-web-policy" in fake.names("networkpolicies")
    deployment = fake.get("deployments", "onexd-proxy-web")
    assert deployment is not None
    proxy_pod = deployment["spec"]["template"]["spec"]
    from onexd.runtime.k8s_render import restricted_violations

    assert restricted_violations(proxy_pod) == [] and proxy_pod["automountServiceAccountToken"] is False

    def allowlist() -> str:
        maps = [fake.get("configmaps", n) for n in fake.names("configmaps") if n.startswith("onexd-proxy-web-")]
        return "".join(json.dumps(m["data"]) for m in maps if m is not None and "egress" in json.dumps(m["data"]))

    assert "example.org" in allowlist()
    changed = _egress_snapshot(tmp_path / "two", host="example.net")
    zones.update(changed)
    assert runner.run(changed, parse_subject("UnixUser:root"), request).record is not None
    assert "example.net" in allowlist() and "example.org" not in allowlist()
    job_ip = next(o["status"]["podIP"] for _, e, o in fake.events["pods"]
                  if o["metadata"]["labels"].get("onexd.job") == outcome.record.id and o["status"].get("podIP"))
    assert runtime.job_for_address(job_ip) == outcome.record.id
    zones.stop()
    assert fake.names("deployments") == [] and fake.names("services") == []
    assert not [n for n in fake.names("configmaps") if n.startswith("onexd-proxy-")]
    assert "onexd-proxy-web-policy" not in fake.names("networkpolicies")


def test_in_cluster_config_outside_a_cluster_is_a_runtime_failure() -> None:
    """inCluster without a service account mounted: a RuntimeFailure saying the configuration failed."""
    with pytest.raises(RuntimeFailure, match="loading the Kubernetes client configuration"):
        KubernetesRuntime(KubernetesSettings(namespace="onexd", in_cluster=True))


def test_the_config_refuses_kubeconfig_and_in_cluster_together() -> None:
    """runtime.kubernetes takes a kubeconfig or inCluster, not both; a bad namespace is refused."""
    from onexd.config import config_from_data
    from onexd.errors import ConfigError

    good = config_from_data({"runtime": {"backend": "kubernetes", "kubernetes": {"namespace": "jobs"}}}, "t")
    assert good.runtime.backend == "kubernetes" and good.runtime.kubernetes.namespace == "jobs"
    with pytest.raises(ConfigError, match="not both"):
        config_from_data({"runtime": {"kubernetes": {"inCluster": True, "kubeconfig": "/k"}}}, "t")
    with pytest.raises(ConfigError, match="namespace"):
        config_from_data({"runtime": {"kubernetes": {"namespace": "Bad_NS"}}}, "t")


def test_a_pod_deleted_by_someone_else_is_an_error(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A Pod deleted from outside onexd (not by the Job's deadline) fails the job with that reason."""
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"")
    runtime = _runtime(fake, tmp_path)

    def delete_the_pod() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            running = [n for n in fake.names("pods") if (fake.get("pods", n) or {}).get("status", {}).get(
                "phase") == "Running"]
            if running:
                fake.delete("pods", running[0])
                return
            time.sleep(0.05)

    deleter = threading.Thread(target=delete_the_pod)
    deleter.start()
    with pytest.raises(RuntimeFailure, match="deleted from outside onexd"):
        runtime.run(_spec(tmp_path), b"{}\n")
    deleter.join()
    _nothing_left(fake)


def test_onexds_own_clock_ends_a_job_the_cluster_does_not(fake: FakeKubernetes, tmp_path: Path) -> None:
    """If the cluster never enforces activeDeadlineSeconds, onexd's clock (injected here) is the backstop:
    past timeout + grace it deletes the Job and records `timed_out`."""
    fake.enforce_deadlines = False
    fake.script = lambda pod: Outcome(hang=True, output=lambda stdin: b"")
    now = [0.0]

    def clock() -> float:
        if any((fake.get("pods", n) or {}).get("status", {}).get("phase") == "Running" for n in fake.names("pods")):
            now[0] += 1000.0  # once the pod runs, time leaps past any timeout
        return now[0]

    runtime = _runtime(fake, tmp_path, clock=clock)
    result = runtime.run(_spec(tmp_path), b"{}\n")
    assert result.status == "timed_out"
    _nothing_left(fake)


@pytest.mark.parametrize("protocols", [("v5.channel.k8s.io",), ("v4.channel.k8s.io",)])
def test_stdin_ends_with_either_attach_protocol(fake: FakeKubernetes, tmp_path: Path,
                                                protocols: tuple[str, ...]) -> None:
    """v5 closes stdin with its close signal; an older v4-only API server ends it when the session closes."""
    fake.attach_protocols = protocols
    fake.script = lambda pod: Outcome(output=lambda stdin: b"read " + stdin)
    result = _runtime(fake, tmp_path).run(_spec(tmp_path), b"x" * 30_000)
    assert result.status == "succeeded" and result.stdout == b"read " + b"x" * 30_000


def test_unreadable_staged_files_are_a_runtime_failure(fake: FakeKubernetes, tmp_path: Path) -> None:
    """A secrets directory the daemon cannot read fails the job with a RuntimeFailure; nothing is created."""
    spec = _spec(tmp_path, "wordcount", secret=b"value")
    mounts = tuple(dataclasses.replace(m, source=str(tmp_path / "gone")) if m.target == "/run/secrets" else m
                   for m in spec.mounts)
    with pytest.raises(RuntimeFailure, match="cannot read its staged files"):
        _runtime(fake, tmp_path).run(dataclasses.replace(spec, mounts=mounts), b"{}\n")
    assert not [m for m, _ in fake.requests if m == "POST"]
