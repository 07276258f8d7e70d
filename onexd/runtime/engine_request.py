"""engine_request(): the pure ContainerSpec -> Engine API translation (create_container's arguments), golden-tested
without a daemon. DockerRuntime (the one module importing the SDK) sends it."""

from __future__ import annotations

from typing import Any

from onexd.spec import ContainerSpec

# Jobs yield CPU to the daemon and everything else (CIS 5.12 wants a non-default share).
CPU_SHARES = 512
# The OOM killer should pick a job before onexd or dockerd.
OOM_SCORE_ADJ = 500


def engine_request(spec: ContainerSpec) -> dict[str, Any]:
    """Keyword arguments for APIClient.create_container. Every security setting is explicit, none defaulted."""
    security_opt = ["no-new-privileges:true"]
    if spec.seccomp.profile_json is not None:
        security_opt.append(f"seccomp={spec.seccomp.profile_json}")
    limits = spec.limits
    host_config: dict[str, Any] = {
        "Privileged": False,
        "ReadonlyRootfs": spec.read_only_rootfs,
        "CapDrop": list(spec.cap_drop),
        "CapAdd": list(spec.cap_add),
        "SecurityOpt": security_opt,
        "Memory": limits.memory_bytes,
        "MemorySwap": limits.memory_swap_bytes,
        "NanoCpus": limits.nano_cpus,
        "CpuShares": CPU_SHARES,
        "PidsLimit": limits.pids_limit,
        "Ulimits": [{"Name": "nofile", "Soft": limits.nofile_limit, "Hard": limits.nofile_limit}],
        "OomScoreAdj": OOM_SCORE_ADJ,
        "NetworkMode": spec.network.network_name or "none",
        "Tmpfs": {t.target: t.options for t in spec.tmpfs},
        "Mounts": [{"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only,
                    "BindOptions": {"Propagation": "rprivate"}} for m in spec.mounts],
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "IpcMode": "private",
        "CgroupnsMode": "private",
        "PublishAllPorts": False,
        "PortBindings": {},
        "Devices": [],
        # Output goes to onexd through the attach stream only: nothing (no secret) lands in engine log files.
        "LogConfig": {"Type": "none", "Config": {}},
    }
    return {
        "image": spec.image,
        # The argv is authoritative: an image ENTRYPOINT must not wrap it.
        "entrypoint": list(spec.command[:1]),
        "command": list(spec.command[1:]),
        "user": spec.user,
        "environment": [f"{k}={v}" for k, v in spec.env],
        "working_dir": spec.working_dir,
        "labels": dict(spec.labels),
        "name": spec.name,
        "hostname": "job",
        "stdin_open": True,
        "tty": False,
        "detach": False,  # with stdin_open: attach stdin once, so EOF on our side is EOF for the job
        "host_config": host_config,
        "use_config_proxy": False,  # never inject the client's proxy settings into a job
    }
