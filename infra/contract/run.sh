#!/usr/bin/env bash
# The API contract, openapi.yaml, checked three ways:
#   1. openapi-spec-validator: it is valid OpenAPI 3.1.
#   2. check_routes.py: it documents exactly the routes template.yaml gives API Gateway.
#   3. schemathesis: a bounded, derandomized run against the ingest API (/v1/*) served by the local
#      stack (`ingestlayer-local dev` against the moto emulator). Any 5xx, or any answer the
#      contract does not describe (status, content type, body, headers), fails the run.
#
# Environment (all optional):
#   AWS_ENDPOINT_URL           a running moto server (infra/test.sh exports one); otherwise one is
#                              started here (infra/emulator.sh) and stopped at the end
#   INGESTLAYER_LOCAL_BIN      the local stack's binary (default debug/ingestlayer-local in cargo's
#                              target directory, CARGO_TARGET_DIR included; never built here)
#   CONTRACT_INCLUDE_WEBHOOKS  1 (default): POST /v1/webhooks/{source} is fuzzed too;
#                              0: it is left out (for a binary built before the webhook route)
#   CONTRACT_MAX_EXAMPLES      overrides max-examples of schemathesis.toml (cases per operation
#                              and phase)
#   CONTRACT_MAX_BATCH_EVENTS  batches of more events than this (up to 500) are not sent
#                              (default 25; 500 sends every boundary, about 2 minutes more)
#
# Tools: schemathesis and openapi-spec-validator, pinned in requirements.txt / requirements.lock,
# in .tools/contract-venv (reinstalled only when the pins change). Logs and reports (JUnit, HAR)
# go to .tools/contract/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/infra/contract"
cd "$ROOT"
VENV="$ROOT/.tools/contract-venv"
OUT="$ROOT/.tools/contract"
# shellcheck source=infra/cargo-target.sh
source "$ROOT/infra/cargo-target.sh"
BIN="${INGESTLAYER_LOCAL_BIN:-$(cargo_target_dir)/debug/ingestlayer-local}"
INCLUDE_WEBHOOKS="${CONTRACT_INCLUDE_WEBHOOKS:-1}"
START=$SECONDS
mkdir -p "$OUT"

# ---------------------------------------------------------------- tools

stamp="$( { cat "$HERE/requirements.txt" "$HERE/requirements.lock"; python3 --version; } | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/schemathesis" || "$(cat "$VENV/.requirements-stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "== contract: installing the pinned tools into .tools/contract-venv"
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r "$HERE/requirements.txt" -c "$HERE/requirements.lock"
  echo "$stamp" >"$VENV/.requirements-stamp"
fi

# ---------------------------------------------------------------- the document

echo "== contract: openapi-spec-validator openapi.yaml"
"$VENV/bin/openapi-spec-validator" "$ROOT/openapi.yaml"
echo "== contract: openapi.yaml and template.yaml routes"
"$VENV/bin/python" "$HERE/check_routes.py" "$ROOT/template.yaml" "$ROOT/openapi.yaml"

# ---------------------------------------------------------------- the local stack

for _ in $(seq 1 30); do
  [[ -x "$BIN" ]] && break
  sleep 1 # it may be being relinked right now
done
if [[ ! -x "$BIN" ]]; then
  echo "contract: no $BIN; build it (cargo build -p ingestlayer-local) or set INGESTLAYER_LOCAL_BIN" >&2
  exit 1
fi

LOCAL_PID=""
stop_local() {
  if [[ -n "$LOCAL_PID" ]] && kill -0 "$LOCAL_PID" 2>/dev/null; then
    kill -INT "$LOCAL_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$LOCAL_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$LOCAL_PID" 2>/dev/null || true
    wait "$LOCAL_PID" 2>/dev/null || true
  fi
  LOCAL_PID=""
}

# shellcheck source=infra/emulator.sh
source "$ROOT/infra/emulator.sh"
start_emulator 0 # reuses AWS_ENDPOINT_URL when it answers; sets its own EXIT trap otherwise
cleanup() {
  stop_local
  stop_emulator
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r PORT STANDIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()')
# Fresh resources every run, even in a shared emulator.
export CONTRACT_PREFIX="contract-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
export CONTRACT_API_URL="http://127.0.0.1:$PORT"
export CONTRACT_INCLUDE_WEBHOOKS="$INCLUDE_WEBHOOKS"
# Fixed test credentials: the API key, the admin token and the three webhook doors' secrets.
export INGESTLAYER_API_KEY="il_contractRunTestKey0000000000000000000000"
export INGESTLAYER_ADMIN_TOKEN="contract-run-admin-token"
export INGESTLAYER_WEBHOOK_SECRET="whsec_Y29udHJhY3QtcnVuLXN0YW5kYXJkLXdlYmhvb2tzISE="
export STRIPE_WEBHOOK_SECRET="whsec_contractRunStripeSecret000000000"
export GITHUB_WEBHOOK_SECRET="contractRunGithubSecret00000000000000000"

echo "== contract: $BIN dev on $CONTRACT_API_URL (emulator $AWS_ENDPOINT_URL, prefix $CONTRACT_PREFIX)"
LOG="$OUT/ingestlayer-local.log"
env -u SLACK_BOT_TOKEN -u SLACK_API_URL -u SLACK_CLIENT_ID -u SLACK_CLIENT_SECRET \
  -u SLACK_SIGNING_SECRET -u PORT -u SLACK_STANDIN_PORT -u SCHEMAS_REQUIRED \
  AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
  "$BIN" dev --port "$PORT" --standin-port "$STANDIN_PORT" --prefix "$CONTRACT_PREFIX" \
  >"$LOG" 2>&1 &
LOCAL_PID=$!
for _ in $(seq 1 600); do
  grep -q "ingestlayer is running" "$LOG" 2>/dev/null && break
  if ! kill -0 "$LOCAL_PID" 2>/dev/null; then
    echo "contract: ingestlayer-local exited before it was ready; its log:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q "ingestlayer is running" "$LOG"; then
  echo "contract: ingestlayer-local was not ready within 60 s; its log ($LOG):" >&2
  tail -n 40 "$LOG" >&2
  exit 1
fi

echo "== contract: seeding the events the signed links point to"
"$VENV/bin/python" "$HERE/hooks.py" seed

# ---------------------------------------------------------------- schemathesis

args=(--config-file "$HERE/schemathesis.toml" run "$ROOT/openapi.yaml"
  --url "$CONTRACT_API_URL" --include-path-regex '^/v1/'
  --report junit,har --report-dir "$OUT/report")
if [[ "$INCLUDE_WEBHOOKS" == 0 ]]; then
  args+=(--exclude-operation-id receiveWebhook)
  echo "== contract: schemathesis (POST /v1/webhooks/{source} left out: CONTRACT_INCLUDE_WEBHOOKS=0)"
else
  echo "== contract: schemathesis (CONTRACT_INCLUDE_WEBHOOKS=0 leaves out POST /v1/webhooks/{source})"
fi
if [[ -n "${CONTRACT_MAX_EXAMPLES:-}" ]]; then
  args+=(--max-examples "$CONTRACT_MAX_EXAMPLES")
fi
rm -rf "$OUT/report"
set +e
(cd "$OUT" && SCHEMATHESIS_HOOKS="$HERE/hooks.py" "$VENV/bin/schemathesis" "${args[@]}")
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  echo "contract: FAILED (schemathesis exit $rc; the report is above, HAR and JUnit in $OUT/report," \
    "the server's log in $LOG) after $((SECONDS - START)) s" >&2
  exit "$rc"
fi
echo "contract: openapi.yaml holds ($((SECONDS - START)) s)"
