#!/usr/bin/env bash
# The onexd demo: what exists today, run for real on the example policies and a real Docker engine.
# No output here is canned. `make demo` installs what is missing and builds the runner images first.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
state="$work/state"

step "Validate the baseline and the example policies (5 stages: limits, schema, references, security, signatures)"
onexd policy validate policies examples/policies

step "A broken bundle: every problem, with file, line, JSON pointer and rule code"
cp -r examples/policies "$work/broken"
sed -i 's/user: "10001:10001"/user: "0:0"/; s/readOnlyRootFilesystem: true /readOnlyRootFilesystem: false/' \
  "$work/broken/hello/sandbox.yaml"
sed -i 's/profile: python-small/profile: python-smal/' "$work/broken/hello/nodes.yaml"
onexd policy validate "$work/broken" || echo "(exit $? — the bundle is rejected; data-job stays valid)"

step "Explain: may root run the hello node? (decision, reasons, effective sandbox; nothing runs)"
onexd policy explain --policy-dir examples/policies --as UnixUser:root examples/requests/hello.json

step "Explain: may the API key deploy-bot run wordcount?"
onexd policy explain --policy-dir examples/policies --as ApiKey:deploy-bot examples/requests/wordcount.json \
  || echo "(exit $? — denied, with the reason)"

step "Run the hello node in its sandbox (input as JSON on stdin, code mounted read-only)"
onexd run --policy-dir examples/policies --state-dir "$state" hello --input '{"name": "operator"}'

step "Run wordcount: it gets /run/secrets/api-token and echoes the token; the output shows *** instead"
token="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ONEXD_DEMO_SECRET_API_TOKEN="$token" onexd run --policy-dir examples/policies --state-dir "$state" wordcount \
  --input "{\"text\": \"$token $token to be or not\", \"top\": 2}"
echo "(sha256 of the token, computed here: $(printf %s "$token" | sha256sum | cut -c1-64))"

step "What a job sees: an ad-hoc probe with the busybox-tiny profile"
onexd run --policy-dir examples/policies --state-dir "$state" --profile busybox-tiny -- sh -c \
  'id; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; touch /x 2>&1; ls /sys/class/net'

step "A job that runs too long is killed at its timeout (here 3 s)"
onexd run --policy-dir examples/policies --state-dir "$state" --timeout 3 --profile busybox-tiny -- sleep 60 \
  || echo "(exit $? — timed out)"

step "An unbound user is denied before anything runs"
onexd run --policy-dir examples/policies --state-dir "$state" --as UnixUser:4242 hello --input '{"name": "x"}' \
  || echo "(exit $? — denied)"

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
