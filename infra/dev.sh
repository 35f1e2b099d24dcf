#!/usr/bin/env bash
# make dev: the whole system on this machine. Installs the one tool it needs (the moto
# server), starts the local AWS emulator and a local Postgres (the warehouse; Debian's
# postgresql package, or the database DATABASE_URL names), creates the resources template.yaml declares, seeds
# the example pipeline, serves the ingest API on http://127.0.0.1:${PORT:-3000} and runs the
# pipeline and slack-delivery consumers. Ctrl-C stops everything it started.
#
# Ports: PORT (ingest API, 3000), SLACK_STANDIN_PORT (Slack stand-in, 3001),
# DISCORD_STANDIN_PORT, TELEGRAM_STANDIN_PORT, NOTION_STANDIN_PORT (3002-3004),
# WEBHOOK_RECEIVER_PORT (the example webhook's receiver, 3005), MOTO_PORT (AWS
# emulator, 4566), POSTGRES_PORT (the local Postgres, 5442; not started when DATABASE_URL is set). A busy one stops it before anything starts, naming the variable to change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# port_free PORT: nothing listens on 127.0.0.1:PORT (bound as the servers bind it).
port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

busy=()
check_port() { # VARIABLE PORT WHAT
  if ! port_free "$2"; then
    busy+=("$1")
    echo "make dev: port $2 ($3) is in use; set $1 to a free port, e.g. $1=$(($2 + 100)) make dev" >&2
  fi
}
check_port PORT "${PORT:-3000}" "the ingest API"
# The stand-in is not started when both are set: posts go to that Slack.
if [[ -z "${SLACK_BOT_TOKEN:-}" || -z "${SLACK_API_URL:-}" ]]; then
  check_port SLACK_STANDIN_PORT "${SLACK_STANDIN_PORT:-3001}" "the Slack stand-in"
fi
# An AWS_ENDPOINT_URL that answers is used instead of starting an emulator.
if [[ -z "${AWS_ENDPOINT_URL:-}" ]] || ! curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null; then
  check_port MOTO_PORT "${MOTO_PORT:-4566}" "the local AWS emulator"
fi
check_port DISCORD_STANDIN_PORT "${DISCORD_STANDIN_PORT:-3002}" "the Discord stand-in"
check_port TELEGRAM_STANDIN_PORT "${TELEGRAM_STANDIN_PORT:-3003}" "the Telegram stand-in"
check_port NOTION_STANDIN_PORT "${NOTION_STANDIN_PORT:-3004}" "the Notion stand-in"
check_port WEBHOOK_RECEIVER_PORT "${WEBHOOK_RECEIVER_PORT:-3005}" "the webhook receiver"
if [[ -z "${DATABASE_URL:-}" ]]; then
  check_port POSTGRES_PORT "${POSTGRES_PORT:-5442}" "the local Postgres"
fi
if [[ ${#busy[@]} -gt 0 ]]; then
  exit 1
fi

bash infra/tools.sh dev
# shellcheck source=infra/emulator.sh
source infra/emulator.sh
# shellcheck source=infra/cargo-target.sh
source infra/cargo-target.sh
start_emulator "${MOTO_PORT:-4566}"
# shellcheck source=infra/postgres.sh
source infra/postgres.sh
start_postgres "${POSTGRES_PORT:-5442}" "dev-${POSTGRES_PORT:-5442}"
# The local stack runs the five functions' own binaries behind a local Lambda Runtime API.
echo "make dev: building ingestlayer-local and the five functions (the first build takes a few minutes)"
# MAKE_DEV_CARGO_ARGS replaces the packages to build: make test passes the build it already
# made (--workspace --all-targets), so make dev runs the very binaries the tests ran instead
# of building them all again with the features of a build without tests.
read -r -a build_args <<<"${MAKE_DEV_CARGO_ARGS:--p ingestlayer-local -p ingest -p pipeline -p slack-delivery -p destination-delivery -p slack-connect -p warehouse}"
cargo build "${build_args[@]}"
"$(cargo_target_dir)/debug/ingestlayer-local" dev "$@" &
DEV_PID=$!
trap 'kill $DEV_PID 2>/dev/null || true; wait $DEV_PID 2>/dev/null || true; stop_emulator; stop_postgres' EXIT INT TERM
wait $DEV_PID
