"""The offline `onexd policy` commands: output formats and exit codes of SPEC §11."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, minimal_docs, run_cli, write_bundle

REQUESTS = ROOT / "examples" / "requests"


def test_explain_allowed_exits_0_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Allowed: exit 0, JSON with top-level allowed, reasons and the effective sandbox."""
    code, out, _ = run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                            str(REQUESTS / "hello.json"), "-o", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["allowed"] is True
    assert data["sandbox"]["user"] == "10001:10001" and data["sandbox"]["zoneMode"] == "none"
    assert {r["code"] for r in data["reasons"]} >= {"binding", "permission", "capability"}


def test_explain_denied_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Denied: exit 3 and the reasons in text."""
    code, out, _ = run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "ApiKey:deploy-bot",
                            str(REQUESTS / "wordcount.json")], capsys)
    assert code == 3
    assert "DENIED" in out and "no capability" in out


def test_explain_reports_input_failing_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """Input that fails the node's inputSchema is shown and makes the request invalid (exit 3)."""
    code, out, _ = run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                            str(REQUESTS / "hello-bad-input.json"), "-o", "json"], capsys)
    assert code == 3
    assert json.loads(out)["inputErrors"]


@pytest.mark.parametrize("subject", ["root", "Wizard:x", "UnixUser:", "UnixUser:no-such-user-xyz"])
def test_explain_bad_subject_is_usage_error(subject: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed or unknown --as is exit 2 with a message."""
    code, _, err = run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", subject,
                            str(REQUESTS / "hello.json")], capsys)
    assert code == 2 and "--as" in err


def test_explain_bad_request_file_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A request that is not JSON, or not a request, is exit 2 naming the file."""
    bad = tmp_path / "r.json"
    bad.write_text("{nope")
    assert run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root", str(bad)],
                   capsys)[0] == 2
    bad.write_text('{"node": "hello", "profile": "x"}')
    code, _, err = run_cli(["policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                            str(bad)], capsys)
    assert code == 2 and "r.json" in err


def test_validate_github_format(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o github prints ::error annotations with file and line."""
    docs = minimal_docs()
    docs[0]["spec"]["user"] = "0:0"
    write_bundle(policy_dir, "base", docs)
    code, out, _ = run_cli(["policy", "validate", str(policy_dir), "-o", "github"], capsys)
    assert code == 3
    line = out.splitlines()[0]
    assert line.startswith("::error file=") and ",line=" in line and "security/root-user" in line


def test_validate_text_names_file_line_and_code(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Text output is `file:line: error code: message (pointer)`."""
    docs = minimal_docs()
    docs[0]["spec"]["readOnlyRootFilesystem"] = False
    write_bundle(policy_dir, "base", docs)
    code, out, err = run_cli(["policy", "validate", str(policy_dir)], capsys)
    assert code == 3
    assert "base/policy.yaml:" in out and "security/writable-root" in out and "/spec/readOnlyRootFilesystem" in out
    assert "invalid" in err


@pytest.mark.integration
def test_validate_usage_errors_exit_2() -> None:
    """No PATH, or an unknown format, is a usage error (exit 2)."""
    for argv in (["policy", "validate"], ["policy", "validate", ".", "-o", "xml"]):
        proc = subprocess.run([sys.executable, "-m", "onexd.cli.main", *argv], capture_output=True, cwd=ROOT,
                              check=False)
        assert proc.returncode == 2


def test_validate_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist is a usage error (exit 2) naming it; an empty directory is invalid (3)."""
    code, _, err = run_cli(["policy", "validate", str(tmp_path / "nope"), "-o", "json"], capsys)
    assert code == 2 and "no such file or directory" in err
    code, out, _ = run_cli(["policy", "validate", str(tmp_path), "-o", "json"], capsys)
    assert code == 3 and "no bundle found" in json.loads(out)[0]["message"]


@pytest.mark.integration
def test_console_script_is_installed() -> None:
    """`onexd --version` works through the installed entry point."""
    exe = Path(sys.executable).parent / "onexd"
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("onexd ")


@pytest.mark.integration
def test_bash_completion_completes_subcommands_and_options(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`onexd completion bash` completes commands, subcommands, options and their values of onexd and onexctl,
    also after an option that takes a value."""
    code, script, _ = run_cli(["completion", "bash"], capsys)
    assert code == 0
    (tmp_path / "c.sh").write_text(script)
    probe = ('source c.sh; complete() { :; }; '
             't() { F=$1; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; '
             'COMPREPLY=(); "$F"; echo "${COMPREPLY[*]}"; }; '
             't _shtab_onexd onexd policy va; '
             't _shtab_onexctl onexctl job run --w; '
             't _shtab_onexctl onexctl --socket /tmp/x jo; '
             't _shtab_onexctl onexctl health -o ""; '
             't _shtab_onexctl onexctl job list --status ru; '
             't _shtab_onexd onexd nope x; echo done')
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=10,
                         check=True).stdout.splitlines()
    assert out[:5] == ["validate", "--wait", "job", "table json yaml", "running"] and out[-1] == "done"


def test_zsh_completion_is_a_zsh_script(capsys: pytest.CaptureFixture[str]) -> None:
    """`onexd completion zsh` prints zsh completion (compdef, _arguments) for both programs, with -o values."""
    code, script, _ = run_cli(["completion", "zsh"], capsys)
    assert code == 0
    assert "#compdef onexd" in script and "#compdef onexctl" in script and "_arguments" in script
    assert "compdef _shtab_onexctl -N onexctl" in script and "(table json yaml)" in script
    assert "complete -F" not in script  # not the bash script through bashcompinit
    code, one, _ = run_cli(["completion", "zsh", "--prog", "onexd"], capsys)
    assert code == 0 and one.startswith("#compdef onexd\n") and "_shtab_onexctl" not in one  # a file for fpath


@pytest.mark.integration
def test_onexctl_completion_prints_its_own_script() -> None:
    """`onexctl completion bash|zsh` exists (as documented) and prints onexctl's completion only."""
    exe = Path(sys.executable).parent / "onexctl"
    for shell in ("bash", "zsh"):
        proc = subprocess.run([str(exe), "completion", shell], capture_output=True, text=True, check=True)
        assert "_shtab_onexctl" in proc.stdout and "_shtab_onexd_" not in proc.stdout


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_registers_both_programs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In a real zsh, eval of `onexd completion zsh` after compinit registers completion for both programs."""
    code, script, _ = run_cli(["completion", "zsh"], capsys)
    assert code == 0
    (tmp_path / "c.zsh").write_text(script)
    probe = ('autoload -U compinit; compinit -u -d ./zcompdump; eval "$(<c.zsh)"; '
             'print "${_comps[onexd]} ${_comps[onexctl]}"')
    out = subprocess.run(["zsh", "-f", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=20,
                         check=True, env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]}).stdout
    assert out.split() == ["_shtab_onexd", "_shtab_onexctl"]


def test_issue_13_18_cli_reference_documents_every_command_and_flag() -> None:
    """docs/cli.md is what `onexd docs cli` generates from both parsers (make generate), and names every
    command, every option and the environment variables the commands read."""
    from onexd.cli import ctl
    from onexd.cli.main import build_parser
    from onexd.cli.reference import cli_reference

    text = (ROOT / "docs" / "cli.md").read_text()
    assert text == cli_reference({"onexd": build_parser, "onexctl": ctl.build_parser})
    for command in ("onexd serve", "onexd policy validate", "onexd secret set", "onexctl job run",
                    "onexctl node get", "onexctl audit tail"):
        assert f"## `{command}`" in text, command
    for variable in ("ONEXD_CONFIG", "ONEXD_LOG_LEVEL", "ONEXD_MASTER_KEY", "ONEXD_SOCKET", "JOURNAL_STREAM"):
        assert f"`{variable}`" in text, variable
