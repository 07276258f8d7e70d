"""Prometheus metrics (prometheus-client), in a registry of the daemon's own: the only module importing it.

Names follow the ONEX security specification where it has them (onex_*), onexd's own otherwise (onexd_*).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TRAIL_SINK = "(trail)"  # the label of events the trail itself dropped; no sink name has parentheses


class _Callback(Collector):
    """Gauges computed at scrape time (shipping lag, key age), so nothing has to keep them up to date."""

    def __init__(self, name: str, doc: str, label: str, values: Callable[[], dict[str, float]]) -> None:
        self.name, self.doc, self.label, self.values = name, doc, label, values

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily(self.name, self.doc, labels=[self.label])
        for key, value in self.values().items():
            family.add_metric([key], value)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.authentication = Counter("onex_authentication_attempts_total", "Authentication attempts.",
                                      ["method", "result"], registry=r)
        self.authorization = Counter("onex_authorization_checks_total", "Authorization decisions.",
                                     ["resource_type", "action", "result"], registry=r)
        self.security_events = Counter("onex_node_execution_security_events_total",
                                       "Security-relevant job outcomes (OOM, timeout, seccomp kill, denial).",
                                       ["event_type", "severity"], registry=r)
        self.jobs = Counter("onexd_jobs_total", "Jobs by final status.", ["status"], registry=r)
        self.job_duration = Histogram("onexd_job_duration_seconds", "Job run time.", registry=r,
                                      buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
        self.reloads = Counter("onexd_policy_reloads_total", "Policy reloads.", ["result"], registry=r)
        self.audit_events = Counter("onexd_audit_events_total", "Audit events written.", registry=r)
        # --- audit shipping (one label per sink); Metrics is the shipper's ShippingObserver -------------
        self.audit_dropped = Counter("onexd_audit_events_dropped_total",
                                     "Audit events lost: by a best-effort sink (UDP, never retried) or, as sink "
                                     "`(trail)`, by the trail itself (delivery: best_effort).",
                                     ["sink"], registry=r)
        self.shipping_failures = Counter("onexd_audit_shipping_failures_total", "Failed shipping batches.",
                                         ["sink"], registry=r)
        # --- job forensics: what finished jobs used, and which system calls seccomp stopped -------------
        self.job_cpu = Histogram("onexd_job_cpu_seconds", "CPU time used by a finished job.", registry=r,
                                 buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800))
        self.job_memory_peak = Histogram("onexd_job_memory_peak_bytes", "Peak memory of a finished job.",
                                         registry=r, buckets=tuple(float(2**n) for n in range(20, 36, 2)))
        self.job_pids_peak = Histogram("onexd_job_pids_peak", "Most processes a finished job had at once.",
                                       registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
        self.job_output = Histogram("onexd_job_output_bytes", "Bytes a finished job wrote (kept or cut).",
                                    registry=r, buckets=tuple(float(4**n) for n in range(4, 15)))
        self.blocked_syscalls = Counter("onexd_job_blocked_syscalls_total",
                                        "System calls seccomp stopped in jobs, by name and action.",
                                        ["syscall", "action"], registry=r)
        self.shipping_retries = Counter("onexd_audit_shipping_retries_total",
                                        "Batches sent again after a failure.", ["sink"], registry=r)
        self.shipped = Counter("onexd_audit_shipped_events_total", "Audit events handed to each sink.",
                               ["sink"], registry=r)

    def job_forensics(self, usage: Mapping[str, int | None] | None, blocked: Mapping[str, Any] | str | None
                      ) -> None:
        """Observe a finished job's usage (unmeasured numbers are skipped) and its blocked call."""
        if usage is not None:
            for histogram, key, scale in ((self.job_cpu, "cpuMs", 1000), (self.job_memory_peak, "memoryPeakBytes", 1),
                                          (self.job_pids_peak, "pidsPeak", 1), (self.job_output, "outputBytes", 1)):
                value = usage.get(key)
                if value is not None:
                    histogram.observe(value / scale)
        if isinstance(blocked, Mapping):
            self.blocked_syscalls.labels(str(blocked.get("name") or blocked.get("number")),
                                         str(blocked.get("action"))).inc()
        elif blocked is not None:
            self.blocked_syscalls.labels("unknown", "unknown").inc()

    def shipped_events(self, sink: str, events: int) -> None:
        self.shipped.labels(sink).inc(events)

    def sink_failed(self, sink: str) -> None:
        self.shipping_failures.labels(sink).inc()

    def sink_retried(self, sink: str) -> None:
        self.shipping_retries.labels(sink).inc()

    def sink_dropped(self, sink: str, events: int) -> None:
        self.audit_dropped.labels(sink).inc(events)

    def trail_dropped(self, events: int) -> None:
        """Events the trail itself could not write (audit.delivery: best_effort), as sink `(trail)`."""
        self.audit_dropped.labels(TRAIL_SINK).inc(events)

    def add_gauge(self, name: str, doc: str, label: str, values: Callable[[], dict[str, float]]) -> None:
        self.registry.register(_Callback(name, doc, label, values))

    def job_finished(self, status: str, duration_s: float | None, reason: str) -> None:
        self.jobs.labels(status).inc()
        if duration_s is not None:
            self.job_duration.observe(duration_s)
        event = {"oom_killed": ("oom_killed", "high"), "timed_out": ("timed_out", "medium")}.get(status)
        if event is None and "seccomp" in reason:
            event = ("seccomp_kill", "high")
        if event is not None:
            self.security_events.labels(*event).inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
