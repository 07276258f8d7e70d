#!/usr/bin/env bash
# The onexd demo, run for real on the example policies and a real Docker engine. No output here is canned.
# `make demo` installs what is missing and builds the runner images first.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
work=$(mktemp -d)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step "Validate the baseline and the example policies (limits, schema, references, security rules)"
onexd policy validate policies examples/policies

step "Start the daemon on a copy of the example policies (socket $work/onexd.sock)"
cp -r examples/policies "$work/policies"
token="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export ONEXD_SOCKET="$work/onexd.sock"
DEMO_SECRET_API_TOKEN="$token" ONEXD_LOG_LEVEL=WARNING onexd serve --socket "$ONEXD_SOCKET" \
  --policy-dir "$work/policies" --state-dir "$work/state" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 1 100); do [ -S "$ONEXD_SOCKET" ] && break; sleep 0.1; done
onexctl health

step "Run the hello node through the socket (input as JSON on stdin, code mounted read-only)"
onexctl -o json job run hello --input '{"name": "operator"}' --wait \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r["durationMs"], "ms, policy", r["policy"]["digest"][:12]); print(r["stdout"], end="")'

step "Run wordcount: it reads /run/secrets/api-token and prints it; the stored output shows *** instead"
onexctl -o json job run wordcount --input "{\"text\": \"$token $token to be or not\", \"top\": 2}" --wait \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"]); print(r["stdout"], end="")'
echo "(sha256 of the token, computed here: $(printf %s "$token" | sha256sum | cut -c1-64))"

step "What a job sees: an ad-hoc probe with the busybox-tiny profile"
onexctl -o json job run --profile busybox-tiny --wait -- sh -c \
  'id; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; touch /x 2>&1; ls /sys/class/net' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["stdout"], end="")'

step "A denial, explained: may the API key deploy-bot run wordcount?"
onexctl -o yaml policy explain --as ApiKey:deploy-bot examples/requests/wordcount.json \
  | sed -n '/^allowed/p;/^reasons/,/^sandbox/p' || true

step "Hot reload: a broken change is rejected (the last good version stays active), the fix recovers"
sed -i 's/user: "10001:10001"/user: "0:0"/' "$work/policies/hello/sandbox.yaml"
sed -i 's/version: 1.0.0/version: 1.1.0/' "$work/policies/hello/bundle.yaml"
sleep 1.5
onexctl health || true
onexctl policy status || true
sed -i 's/user: "0:0"/user: "10001:10001"/' "$work/policies/hello/sandbox.yaml"
sleep 1.5
onexctl health

step "Diff in security terms: raise a memory limit and grant a node to another capability"
cp -r examples/policies "$work/new"
sed -i 's/version: 1.0.0/version: 1.1.0/' "$work/new/hello/bundle.yaml"
sed -i 's/memory: 128Mi/memory: 512Mi/' "$work/new/hello/sandbox.yaml"
sed -i 's/nodes: \["word\*"\]/nodes: ["word*", "hello"]/' "$work/new/data-job/policy.yaml"
sed -i 's/version: 1.0.0/version: 1.0.1/' "$work/new/data-job/bundle.yaml"
onexd policy diff examples/policies "$work/new" || echo "(exit $? — different)"

step "Sign a bundle and validate it against the trusted key; then tamper with it"
onexd policy keygen "$work/ops.pem"
cp -r examples/policies/hello "$work/hello"
onexd policy sign "$work/hello" --key "$work/ops.pem"
onexd policy validate "$work/hello" --trust "$work/ops.pem.pub"
echo "# edited after signing" >> "$work/hello/nodes.yaml"
onexd policy validate "$work/hello" --trust "$work/ops.pem.pub" || echo "(exit $? — the change is detected)"

step "One job without the daemon: onexd run, with a 3 s timeout"
onexd run --policy-dir examples/policies --state-dir "$work/state-run" --timeout 3 --profile busybox-tiny -- sleep 60 \
  || echo "(exit $? — timed out)"

step "The audit trail: every decision above is recorded, hash-chained and signed; verify it"
onexctl audit tail -n 8
onexctl audit verify

step "Stop the daemon (SIGTERM: running jobs finish, the socket is removed)"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_pid=""
[ ! -e "$ONEXD_SOCKET" ] && echo "stopped; socket removed"

step "Offline verification of the trail, now sealed by a signed checkpoint written at stop"
onexd audit verify --state-dir "$work/state"
