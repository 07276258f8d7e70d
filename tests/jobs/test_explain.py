"""explain: the decision with the sandbox translate() really produces, one implementation for CLI and API."""

from __future__ import annotations

import pytest

from onexd.engine.decide import decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import translate
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import EXPLAIN_JOB_ID, EXPLAIN_PATHS, explain, sandbox_of
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from tests.conftest import EXAMPLES

ROOT = parse_subject("UnixUser:root")
REQUESTS = [JobRequest(node="hello", input={"name": "x"}),
            JobRequest(profile="busybox-tiny", command=("echo", "hi"))]


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    ev = load_directory(EXAMPLES)
    assert ev.snapshot is not None
    return ev.snapshot


@pytest.mark.parametrize("request_", REQUESTS, ids=["node", "adhoc"])
def test_explained_sandbox_is_what_translate_produces(snapshot: Snapshot, request_: JobRequest) -> None:
    """Every security setting explain shows equals the container spec's, and agrees with the policy's view."""
    result = explain(snapshot, ROOT, request_)
    assert result["allowed"] is True
    decision = decide(snapshot, ROOT, request_)
    spec = translate(snapshot, decision, request_, EXPLAIN_JOB_ID, EXPLAIN_PATHS)
    shown = result["sandbox"]
    assert {k: shown[k] for k in sandbox_of(spec)} == sandbox_of(spec)
    assert decision.sandbox is not None
    assert {k: decision.sandbox.as_dict(snapshot)[k] for k in sandbox_of(spec)} == sandbox_of(spec)


def test_explain_reports_input_errors_without_running(snapshot: Snapshot) -> None:
    """Bad input is listed under inputErrors; the decision itself stays allowed."""
    result = explain(snapshot, ROOT, JobRequest(node="hello", input={"name": ""}))
    assert result["allowed"] is True and result["inputErrors"]
