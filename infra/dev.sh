#!/usr/bin/env bash
# make dev: the whole system on this machine. Installs the tools it needs, starts the
# local AWS emulator, creates the resources template.yaml declares, seeds the example
# pipeline, serves the ingest API on http://127.0.0.1:${PORT:-3000} and runs the pipeline
# and slack-delivery consumers. Ctrl-C stops everything it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash infra/tools.sh
# shellcheck source=infra/emulator.sh
source infra/emulator.sh
start_emulator "${MOTO_PORT:-4566}"
# The local stack runs the four functions' own binaries behind a local Lambda Runtime API.
cargo build --quiet -p ingestlayer-local -p ingest -p pipeline -p slack-delivery -p slack-connect
"$ROOT/target/debug/ingestlayer-local" dev "$@" &
DEV_PID=$!
trap 'kill $DEV_PID 2>/dev/null || true; wait $DEV_PID 2>/dev/null || true; stop_emulator' EXIT INT TERM
wait $DEV_PID
