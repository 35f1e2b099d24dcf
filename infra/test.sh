#!/usr/bin/env bash
# make test: every test. Format and lint, unit and handler tests, end-to-end tests
# through a local AWS emulator (moto server, started here on a free port) and the Slack
# stand-in, a real-browser test of the destinations page (infra/e2e), signed webhooks made by
# the providers' own libraries (infra/webhooks), the TypeScript SDK (sdk/typescript), the
# OpenAPI contract with schemathesis (infra/contract), `make dev` as a user runs it
# (infra/dev-test.sh), and the deploy path: the Slack app manifest and env-vars file,
# cfn-lint, sam validate --lint, sam build (beside the suites after cargo test).
#
# Every binary is run from cargo's target directory, wherever CARGO_TARGET_DIR puts it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Each phase's time goes in the summary at the end, so a slow CI run says where it went.
PHASES=()
phase_start=$SECONDS
phase_name="tools (infra/tools.sh)"
phase() {
  PHASES+=("$(printf '%5ds  %s' $((SECONDS - phase_start)) "$phase_name")")
  phase_start=$SECONDS
  phase_name="$1"
  echo "== $1"
}
phase_summary() {
  phase "done"
  echo "== time per phase (${SECONDS}s in all)"
  printf '%s\n' "${PHASES[@]}"
}
bash infra/tools.sh all
# shellcheck source=infra/emulator.sh
source infra/emulator.sh
# shellcheck source=infra/cargo-target.sh
source infra/cargo-target.sh

phase "scripts and tests find cargo's output through its target directory"
# A path hard-coded under target/ breaks under CARGO_TARGET_DIR.
if git grep -nE 'target/(debug|release|lambda)\b' -- '*.sh' '*.mjs' '*.js' '*.py' '*.rs' '*.toml' Makefile '.ci/*'; then
  echo "make test: the lines above hard-code a target/ path; use cargo_target_dir (infra/cargo-target.sh), cargo metadata or CARGO_BIN_EXE_*" >&2
  exit 1
fi

phase "the import graph: no circles, no arrow up (infra/check-imports.py)"
python3 infra/check-imports.py
phase "cargo fmt --check"
cargo fmt --all --check
phase "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

unset AWS_ENDPOINT_URL
start_emulator 0
# The warehouse tests' Postgres (Debian's postgresql package; .ci/run installs it), on a
# free port, TLS with a CA of its own; a DATABASE_URL already set is used instead.
# shellcheck source=infra/postgres.sh
source infra/postgres.sh
test_pg_down() {
  stop_postgres
  rm -rf "${TMPDIR:-/tmp}/ingestlayer-pg/test-$$"
}
trap 'stop_emulator; test_pg_down' EXIT
start_postgres 0 "test-$$"
phase "cargo build (the functions' binaries, which the end-to-end tests run)"
# --all-targets resolves features as cargo test does, so the test build below reuses it.
cargo build --workspace --all-targets --quiet

phase "cargo test"
# The end-to-end tests mostly wait on I/O (the emulator, the stand-in, SQS visibility
# timeouts), so they run four at a time on two cores.
cargo test --workspace -- --test-threads 4

# The deploy path's checks (the Slack app manifest and env-vars file, cfn-lint, sam validate
# --lint, the arm64 sam build) need none of the services below, and the suites from here on
# mostly wait on I/O: they run beside them, at the lowest CPU priority, in their own process
# group and release target directories (cargo's lock on debug/ is the tests'); their result
# is awaited at the end. Not beside `cargo test`: its pacing tests time posts against an
# in-process stand-in that allows one a second, and the one run that built beside them had
# a 429 there.
# make test proves that the deploy path builds; thin LTO and optimisation only change the
# size and speed of the shipped binaries, so they are skipped here, which halves the cold
# arm64 build (`make sam-build` builds exactly as deployed).
TEMPLATE_LOG="$(mktemp)"
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
  setsid -w nice -n 19 bash infra/template-check.sh >"$TEMPLATE_LOG" 2>&1 &
TEMPLATE_PID=$!
trap 'kill -- -"$TEMPLATE_PID" 2>/dev/null || true; stop_emulator; test_pg_down' EXIT

phase "browser end-to-end (infra/e2e: the destinations page in headless Chromium)"
# Drives ingestlayer-local against the emulator above. Needs Node.js >= 20 and
# /usr/bin/chromium (.ci/run installs it); playwright-core never downloads a browser.
# cargo test above built ingestlayer-local (with the workspace's unified features); a
# separate `cargo build -p` would rebuild the AWS SDK with other features. The Node.js
# suites and the contract run all use this one binary.
INGESTLAYER_LOCAL_BIN="$(cargo_target_dir)/debug/ingestlayer-local"
export INGESTLAYER_LOCAL_BIN
[[ -x "$INGESTLAYER_LOCAL_BIN" ]] || cargo build --quiet -p ingestlayer-local
E2E="$ROOT/infra/e2e"
if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.ci-lock"; then
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
    && cp package-lock.json node_modules/.ci-lock)
fi
(cd "$E2E" && node --test --test-reporter=spec)

phase "webhook interoperability (infra/webhooks: the providers' own signing libraries)"
bash infra/webhooks/test.sh

phase "TypeScript SDK (sdk/typescript: build, generated types current, node --test, type tests)"
bash sdk/typescript/test.sh

phase "OpenAPI contract (openapi.yaml: validated, then a bounded schemathesis run)"
bash infra/contract/run.sh

phase "make dev (infra/dev-test.sh: busy ports, PORT honoured by make webhook, plain logs)"
# make dev builds what the tests built (MAKE_DEV_CARGO_ARGS in infra/dev.sh), and make webhook
# runs the command line they built (INGESTLAYER_CLI in the Makefile): the binaries the tests
# ran, without building everything again with the features of a build without tests.
MAKE_DEV_CARGO_ARGS="--workspace --all-targets" INGESTLAYER_CLI="$(cargo_target_dir)/debug/ingestlayer" \
  bash infra/dev-test.sh
stop_emulator
test_pg_down

phase "template checks (running beside the suites since cargo test; what is left of them)"
template_rc=0
wait "$TEMPLATE_PID" || template_rc=$?
cat "$TEMPLATE_LOG"
rm -f "$TEMPLATE_LOG"
if [[ $template_rc != 0 ]]; then
  echo "make test: the template checks failed (exit $template_rc); their output is above" >&2
  exit 1
fi
phase_summary
echo "make test: all green"
