"""The sandbox envelope: SPEC section 5 stated over the Docker engine request, apart from translate().

`inside_envelope()` reads only the engine request (what Docker receives) and says everything that is wrong with
it. Hypothesis generates policies, with adversarial spellings of paths, numbers, names, users and seccomp rules;
every policy that validates must yield, for every job it allows, a request inside the envelope.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onexd.engine.decide import decide
from onexd.engine.pool import pool_key, slot_spec
from onexd.engine.request import JobRequest
from onexd.engine.translate import HostPaths, translate
from onexd.identity.principal import parse_subject
from onexd.policy.pipeline import load_directory
from onexd.policy.seccomp import DENYLIST
from onexd.runtime.docker import engine_request
from tests.conftest import doc, write_bundle

# The envelope's own numbers, written down here rather than imported: the test states the contract.
NODE_SOURCE = "/var/lib/onexd/nodes/sha256-0000"
SECRETS_DIR = "/dev/shm/onexd/job"
ALLOWED_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE",
                "AUDIT_WRITE"}
RESERVED = ("/", "/app", "/app/node", "/run/secrets", "/proc", "/sys", "/dev", "/etc")
PERMISSIVE = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"}
MEMORY = (6 * 1024**2, 256 * 1024**3)
NANO_CPUS = (10**7, 256 * 10**9)
PIDS = (1, 65536)
NOFILE = (8, 1048576)
TMPFS = (4096, 64 * 1024**3)
IDS = (1, 2**31 - 1)
HOST_MODES = ("PidMode", "UTSMode", "UsernsMode", "IpcMode", "NetworkMode", "CgroupnsMode")


def _within(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _seccomp_problems(profile: dict[str, Any]) -> list[str]:
    out = []
    if profile.get("defaultAction") in PERMISSIVE:
        out.append(f"seccomp defaultAction {profile.get('defaultAction')}")
    if profile.get("defaultErrnoRet") == 0:
        out.append("seccomp defaultErrnoRet 0")
    if set(profile.get("flags") or ()) - {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"}:
        out.append(f"seccomp flags {profile.get('flags')}")
    for rule in profile.get("syscalls") or ():
        if rule.get("action") not in PERMISSIVE:
            continue
        for name in set(rule.get("names") or ()) & DENYLIST:
            namespaces_filtered = name == "clone" and rule.get("action") == "SCMP_ACT_ALLOW" and any(
                a.get("op") == "SCMP_CMP_MASKED_EQ" and a.get("index") in (0, 1)
                and a.get("value", 0) & 0x7E020000 == 0x7E020000 and a.get("valueTwo", 0) == 0
                for a in rule.get("args") or ())
            if not namespaces_filtered:
                out.append(f"seccomp lets {name} through ({rule.get('action')})")
    return out


def _tmpfs_problems(target: str, options: str) -> list[str]:
    out = []
    if posixpath.normpath(target) != target or target.startswith("//"):
        out.append(f"tmpfs target {target!r} not normalized")
    if any(target == r or r.startswith(target.rstrip("/") + "/") or (r != "/" and target.startswith(r + "/"))
           for r in RESERVED):
        out.append(f"tmpfs over reserved path {target!r}")
    opts = options.split(",")
    if "nosuid" not in opts or "nodev" not in opts:
        out.append(f"tmpfs {target!r} without nosuid,nodev")
    sizes = [o.removeprefix("size=") for o in opts if o.startswith("size=")]
    if len(sizes) != 1 or not sizes[0].isdigit() or not _within(int(sizes[0]), TMPFS):
        out.append(f"tmpfs {target!r} size {sizes}")
    return out


def inside_envelope(request: dict[str, Any]) -> list[str]:
    """Everything about an engine request (APIClient.create_container keyword arguments) that breaks SPEC
    section 5; empty when the request is inside the sandbox envelope."""
    out: list[str] = []
    hc: dict[str, Any] = request.get("host_config") or {}
    if hc.get("Privileged") is not False:
        out.append("privileged")
    if hc.get("ReadonlyRootfs") is not True:
        out.append("root filesystem writable")
    if hc.get("CapDrop") != ["ALL"]:
        out.append(f"CapDrop {hc.get('CapDrop')}")
    if not set(hc.get("CapAdd") or ()) <= ALLOWED_CAPS:
        out.append(f"CapAdd {hc.get('CapAdd')}")
    opts = hc.get("SecurityOpt") or []
    if "no-new-privileges:true" not in opts:
        out.append("no-new-privileges missing")
    seccomp = [o.removeprefix("seccomp=") for o in opts if o.startswith("seccomp")]
    if any(s in ("unconfined", "seccomp:unconfined") for s in seccomp) or len(seccomp) > 1:
        out.append(f"seccomp {seccomp}")
    for text in seccomp:  # none: the engine's default profile (the daemon refuses an engine without one)
        try:
            out += _seccomp_problems(json.loads(text))
        except ValueError:
            out.append("seccomp profile is not JSON")
    if any(o.startswith(("apparmor=unconfined", "label=disable", "systempaths=unconfined")) for o in opts):
        out.append(f"security options {opts}")
    user = str(request.get("user", ""))
    uid, _, gid = user.partition(":")
    if not (uid.isdigit() and gid.isdigit() and _within(int(uid), IDS) and _within(int(gid), IDS)):
        out.append(f"user {user!r}")
    if not _within(hc.get("Memory"), MEMORY) or hc.get("MemorySwap") != hc.get("Memory"):
        out.append(f"memory {hc.get('Memory')} swap {hc.get('MemorySwap')}")
    if not _within(hc.get("NanoCpus"), NANO_CPUS):
        out.append(f"NanoCpus {hc.get('NanoCpus')}")
    if not _within(hc.get("PidsLimit"), PIDS):
        out.append(f"PidsLimit {hc.get('PidsLimit')}")
    nofile = [u for u in hc.get("Ulimits") or [] if u.get("Name") == "nofile"]
    if len(nofile) != 1 or nofile[0].get("Soft") != nofile[0].get("Hard") or not _within(nofile[0].get("Hard"),
                                                                                          NOFILE):
        out.append(f"nofile {nofile}")
    for key in HOST_MODES:
        value = str(hc.get(key) or "")
        if value == "host" or value.startswith("container:"):
            out.append(f"{key} {value}")
    network = hc.get("NetworkMode")
    if network != "none" and not str(network).startswith("onexd-zone-"):
        out.append(f"network {network}")
    if hc.get("Devices") or hc.get("DeviceRequests") or hc.get("DeviceCgroupRules"):
        out.append("devices")
    if hc.get("PublishAllPorts") or hc.get("PortBindings"):
        out.append("published ports")
    for key in ("Binds", "VolumesFrom", "Links", "Sysctls", "CapAddAll"):
        if hc.get(key):
            out.append(f"{key} set")
    allowed_mounts = {("/app/node", NODE_SOURCE), ("/run/secrets", SECRETS_DIR)}
    for mount in hc.get("Mounts") or []:
        if (mount.get("Type") != "bind" or (mount.get("Target"), mount.get("Source")) not in allowed_mounts
                or mount.get("ReadOnly") is not True):
            out.append(f"mount {mount}")
    for target, options in (hc.get("Tmpfs") or {}).items():
        out += _tmpfs_problems(target, options)
    if (hc.get("RestartPolicy") or {}).get("Name") != "no":
        out.append("restart policy")
    if (request.get("labels") or {}).get("onexd.managed") != "true":
        out.append("label onexd.managed")
    return out


# --- generators: mostly valid values, with adversarial spellings mixed in -------------------------------------

_sizes_ok = st.sampled_from(["64Mi", "128Mi", "1Gi", 67108864, "6Mi", "256Gi"])
_sizes_bad = st.sampled_from([0, 1, -1, 2**63 - 1, 2**64, "1024Ti", "64M", "64mi", "0x4000000", 6291455, 1e9,
                              "9" * 30, True, None, "", "64 Mi", "+64Mi", "064Mi"])
_cpus = st.one_of(st.floats(0.01, 8), st.sampled_from([1e-10, 0.001, 0.0049, 0.005, 0.01, 256, 256.0001, 1e300,
                                                       -1, 0, "1", True, 2**63]))
_ints = st.one_of(st.integers(1, 70000), st.sampled_from([0, -1, 2**31, 2**63 - 1, 1.5, "64", False, 1048577]))
_paths = st.one_of(
    st.sampled_from(["/tmp", "/scratch", "/var/tmp", "/home/job", "/work/a.b"]),
    st.sampled_from(["//proc", "/./proc", "/../proc", "//sys", "//dev", "//etc", "//run/secrets", "/tmp/",
                     "/tmp/../etc", "/proc", "/proc/sys", "/run", "/app", "/app/node/x", "/", "/etc/x",
                     "/tmp//a", "/sys/fs/cgroup", "/dev/shm", "/run/secrets/x", "tmp", "/tmp/\u2024", "/ proc",
                     "/PROC", "/tmp/.", "/..", "/."]),
)
_users = st.one_of(st.builds(lambda u, g: f"{u}:{g}", st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)),
                   st.sampled_from(["0:0", "1000:0", "4294967296:1", "2147483648:1", "01000:1000", "1000",
                                    "-1:1", "1000:1000 ", "+1:1", "1e3:1", "65534:65534"]))
_caps = st.lists(st.sampled_from([*sorted(ALLOWED_CAPS), "SYS_ADMIN", "ALL", "CAP_CHOWN", "NET_ADMIN",
                                  "SYS_PTRACE", "chown", "DAC_READ_SEARCH"]), max_size=3)
_syscalls = st.sampled_from(["read", "write", "exit_group", "getpid", "clone", "clone3", "unshare", "setns",
                             "mount", "bpf", "keyctl", "ptrace", "userfaultfd", "perf_event_open", "personality",
                             "io_uring_setup", "open_by_handle_at", "kexec_load", "MOUNT", "mount ", "umount2"])
_actions = st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY",
                            "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_allow", "ALLOW"])
_args = st.lists(st.fixed_dictionaries({
    "index": st.sampled_from([0, 1, 6]), "value": st.sampled_from([0, 0x7E020000, 0x10000000, 2**64]),
    "op": st.sampled_from(["SCMP_CMP_MASKED_EQ", "SCMP_CMP_EQ", "SCMP_CMP_NE"])}), max_size=2)
_seccomp = st.fixed_dictionaries(
    {"defaultAction": st.sampled_from(["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ALLOW",
                                       "SCMP_ACT_LOG", "SCMP_ACT_TRACE"]),
     "syscalls": st.lists(st.fixed_dictionaries({"names": st.lists(_syscalls, min_size=1, max_size=3),
                                                 "action": _actions},
                                                optional={"args": _args}), max_size=4)},
    optional={"defaultErrnoRet": st.sampled_from([0, 1, 38, 4096]),
              "flags": st.lists(st.sampled_from(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "bogus"]), max_size=2)})
_names = st.sampled_from(["filter", "strict", "runtime-default", "unconfined", "Filter", "a" * 64, "-x"])


_safe_seccomp = st.fixed_dictionaries(
    {"defaultAction": st.sampled_from(["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"]),
     "syscalls": st.lists(st.fixed_dictionaries({
         "names": st.lists(st.sampled_from(["read", "write", "exit_group", "getpid", "futex"]), min_size=1,
                           max_size=3),
         "action": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_ERRNO"])}), max_size=3)},
    optional={"defaultErrnoRet": st.sampled_from([1, 38])})
_CLONE_FILTERED = {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
# Each field has ordinary values and adversarial ones (hostile spellings, values at and beyond the bounds).
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "memory": (_sizes_ok, _sizes_bad),
    "cpus": (st.floats(0.01, 8), _cpus),
    "pids": (st.integers(1, 65536), _ints),
    "nofile": (st.integers(8, 1048576), _ints),
    "timeoutSeconds": (st.integers(1, 86400), _ints),
    "outputBytes": (st.sampled_from(["64Ki", "1Mi", "64Mi", 1024]), _sizes_bad),
    "user": (st.sampled_from(["1000:1000", "65534:65534", "2147483647:1"]), _users),
    "tmpfs_path": (st.sampled_from(["/tmp", "/scratch", "/var/tmp"]), _paths),
    "tmpfs_size": (st.sampled_from(["4Mi", "64Gi", 4096]), _sizes_bad),
    "caps": (st.lists(st.sampled_from(sorted(ALLOWED_CAPS)), max_size=2), _caps),
    "seccomp": (_safe_seccomp, _seccomp),
    "seccomp_name": (st.just("filter"), _names),
    "seccomp_ref": (st.sampled_from(["filter", "runtime-default"]), st.sampled_from(["unconfined", "Filter", ""])),
    "readOnlyRootFilesystem": (st.just(True), st.sampled_from([False, "true", None, 1])),
}


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    # Up to three fields get adversarial values; the rest are ordinary, so that many policies still validate.
    hostile = set(draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)))

    def value(field: str) -> Any:
        ok, bad = FIELDS[field]
        return draw(bad if field in hostile else ok)

    seccomp_name = value("seccomp_name")
    seccomp_ref = value("seccomp_ref")
    seccomp = value("seccomp")
    if draw(st.booleans()):
        seccomp = {**seccomp, "syscalls": [*seccomp["syscalls"], _CLONE_FILTERED]}
    profile = {
        "image": "onexd/runner-busybox",
        "user": value("user"),
        "tmpfs": [{"path": value("tmpfs_path") if i == 0 else "/extra", "size": value("tmpfs_size"), "mode": "1777"}
                  for i in range(draw(st.integers(0, 2)))],
        "capabilities": {"add": value("caps")},
        "seccompProfile": seccomp_name if seccomp_ref == "filter" else seccomp_ref,
        "resources": {f: value(f) for f in ("memory", "cpus", "pids", "nofile", "timeoutSeconds", "outputBytes")},
        "readOnlyRootFilesystem": value("readOnlyRootFilesystem"),
    }
    secret = draw(st.booleans())
    node: dict[str, Any] = {"version": "1.0.0", "profile": "p", "command": ["cat"], "source": {"path": "code"}}
    if secret:
        node["secrets"] = ["s"]
    docs = [
        doc("SeccompProfile", seccomp_name, {"profile": seccomp}),
        doc("SandboxProfile", "p", profile),
        doc("Node", "n", node),
        doc("Capability", "c", {"nodes": ["n"], "profiles": ["p"], "secrets": ["s"] if secret else [],
                                "adhoc": True}),
        doc("Role", "r", {"permissions": ["nodes:execute"], "capabilities": ["c"]}),
        doc("RoleBinding", "b", {"roles": ["r"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ]
    if secret:
        docs += [doc("SecretSource", "store", {"type": "encrypted"}), doc("Secret", "s", {"source": "store",
                                                                                         "key": "k"})]
    return docs


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policies())
def test_every_policy_that_validates_yields_a_request_inside_the_envelope(docs: list[dict[str, Any]]) -> None:
    """Any generated policy that validates produces, for node and ad-hoc jobs, engine requests in the envelope."""
    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(Path(tmp), "gen", docs, files={"code/main.py": "print(1)\n"})
        ev = load_directory(Path(tmp))
    if not ev.ok or ev.snapshot is None:
        event("rejected")
        return
    event("validated")
    snapshot = ev.snapshot
    principal = parse_subject("UnixUser:root")
    for body in ({"node": "n", "input": None}, {"profile": "p", "command": ["sh", "-c", "true"]}):
        request = JobRequest.model_validate(body)
        decision = decide(snapshot, principal, request)
        assert decision.allowed, decision.reasons
        spec = translate(snapshot, decision, request, "job", HostPaths(node_source=NODE_SOURCE,
                                                                        secrets_dir=SECRETS_DIR))
        problems = inside_envelope(engine_request(spec))
        assert problems == [], (problems, docs)
        # The pooled path: a warm slot made for this job's key is inside the same envelope.
        slot = slot_spec(spec, "onexd-slot-0", pool_key(spec, "image-id"))
        assert inside_envelope(engine_request(slot)) == [], docs


def test_envelope_check_catches_each_kind_of_escape() -> None:
    """The envelope function is not vacuous: each weakened field of a good request is reported."""
    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(Path(tmp), "gen", [
            doc("SandboxProfile", "p", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                        "tmpfs": [{"path": "/tmp", "size": "4Mi"}],
                                        "resources": {"memory": "64Mi", "cpus": 0.5, "pids": 32, "nofile": 64,
                                                      "timeoutSeconds": 30, "outputBytes": "64Ki"}}),
            doc("Capability", "c", {"profiles": ["p"], "adhoc": True}),
            doc("Role", "r", {"permissions": ["nodes:execute"], "capabilities": ["c"]}),
            doc("RoleBinding", "b", {"roles": ["r"], "subjects": [{"kind": "UnixUser", "name": "root"}]})])
        ev = load_directory(Path(tmp))
    assert ev.snapshot is not None
    request = JobRequest.model_validate({"profile": "p", "command": ["true"]})
    decision = decide(ev.snapshot, parse_subject("UnixUser:root"), request)
    good = engine_request(translate(ev.snapshot, decision, request, "job"))
    assert inside_envelope(good) == []
    weakened: list[tuple[str, Any]] = [
        ("Privileged", True), ("ReadonlyRootfs", False), ("CapDrop", []), ("CapAdd", ["SYS_ADMIN"]),
        ("SecurityOpt", ["seccomp=unconfined"]), ("Memory", 0), ("Memory", 2**63 - 1), ("MemorySwap", -1),
        ("NanoCpus", 0), ("PidsLimit", -1), ("Ulimits", []), ("NetworkMode", "host"), ("PidMode", "host"),
        ("UsernsMode", "host"), ("Devices", [{"PathOnHost": "/dev/kmsg"}]), ("PortBindings", {"80/tcp": []}),
        ("Binds", ["/:/host"]), ("Tmpfs", {"//proc": "rw,nosuid,nodev,size=1"}),
        ("Tmpfs", {"/tmp": "rw,size=1048576"}),
        ("Mounts", [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/run/docker.sock",
                     "ReadOnly": False}]),
        ("SecurityOpt", ["no-new-privileges:true", 'seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":'
                                                   '[{"names":["mount"],"action":"SCMP_ACT_ALLOW"}]}']),
        ("RestartPolicy", {"Name": "always"}),
    ]
    for key, value in weakened:
        bad = {**good, "host_config": {**good["host_config"], key: value}}
        assert inside_envelope(bad), key
    for key, value in (("user", "0:0"), ("user", "4294967296:1"), ("labels", {})):
        assert inside_envelope({**good, key: value}), key
