#!/usr/bin/env bash
# `make dev` as a newcomer runs it, checked by make test:
#
#   1. a busy port (PORT, SLACK_STANDIN_PORT, MOTO_PORT) stops it before anything starts, with
#      a message naming the port and the variable to change;
#   2. it comes up on the ports it is given, running the binary from cargo's target directory
#      (CARGO_TARGET_DIR included: .ci/run sets one outside the checkout), and
#      `make webhook ARGS="send …"` with the same PORT reaches it: the signed delivery is
#      accepted and the Slack stand-in prints the message;
#   3. its output, written to a file, carries no colour codes;
#   4. stopped (SIGTERM), it stops the Postgres it started (it runs here without
#      DATABASE_URL, as a newcomer's does).
#
# Uses the emulator at AWS_ENDPOINT_URL when it answers (infra/test.sh's), else dev.sh starts
# one on MOTO_PORT. Logs in .tools/dev-test/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.tools/dev-test"
mkdir -p "$OUT"

fail() { printf 'dev-test: FAIL: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

HOLDER_PID=""
DEV_PID=""
cleanup() {
  [[ -n "$HOLDER_PID" ]] && kill "$HOLDER_PID" 2>/dev/null || true
  if [[ -n "$DEV_PID" ]] && kill -0 "$DEV_PID" 2>/dev/null; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# hold_port: listens on a free port until killed; prints the port.
hold_port() {
  local port
  port="$(free_port)"
  python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(600)' "$port" &
  HOLDER_PID=$!
  for _ in $(seq 1 50); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
    sleep 0.1
  done
  HELD="$port"
}

echo "== dev-test: a busy port stops make dev, naming the port and its variable"
for var in PORT SLACK_STANDIN_PORT MOTO_PORT; do
  hold_port
  set +e
  msg="$(env -u AWS_ENDPOINT_URL -u SLACK_BOT_TOKEN -u SLACK_API_URL \
    PORT="$(free_port)" SLACK_STANDIN_PORT="$(free_port)" MOTO_PORT="$(free_port)" "$var=$HELD" \
    timeout 60 bash infra/dev.sh 2>&1)"
  rc=$?
  set -e
  kill "$HOLDER_PID" 2>/dev/null || true
  wait "$HOLDER_PID" 2>/dev/null || true
  HOLDER_PID=""
  [[ $rc == 1 ]] || fail "$var=$HELD busy: make dev exited $rc, not 1: $msg"
  [[ "$msg" == *"port $HELD"*"set $var to a free port"* ]] || fail "$var=$HELD busy: the message does not name both: $msg"
  echo "$var: $msg"
done

echo "== dev-test: make dev on PORT and SLACK_STANDIN_PORT, then make webhook with that PORT"
PORT="$(free_port)"
STANDIN_PORT="$(free_port)"
MOTO_PORT="$(free_port)" # used when AWS_ENDPOINT_URL does not name a running emulator
# Without DATABASE_URL, as a newcomer runs it: make dev starts its own Postgres.
PG_PORT="$(free_port)"
LOG="$OUT/make-dev.log"
env -u SLACK_BOT_TOKEN -u SLACK_API_URL -u INGESTLAYER_ADMIN_TOKEN -u INGESTLAYER_API_URL -u DATABASE_URL \
  PORT="$PORT" SLACK_STANDIN_PORT="$STANDIN_PORT" MOTO_PORT="$MOTO_PORT" POSTGRES_PORT="$PG_PORT" \
  bash infra/dev.sh >"$LOG" 2>&1 &
DEV_PID=$!
# The first build of ingestlayer-local (without the test-only features) can take minutes.
for _ in $(seq 1 1800); do
  grep -q "make webhook ARGS" "$LOG" 2>/dev/null && break
  kill -0 "$DEV_PID" 2>/dev/null || { tail -n 40 "$LOG" >&2; fail "make dev exited before it was ready"; }
  sleep 0.5
done
grep -q "ingestlayer is running" "$LOG" || { tail -n 40 "$LOG" >&2; fail "make dev was not ready within 15 minutes"; }
grep -q "ingest API  http://127.0.0.1:$PORT" "$LOG" || fail "the banner does not name PORT $PORT"

endpoint="$(sed -nE 's/^emulator: (moto server on|using the one at) //p' "$LOG" | head -n 1)"
[[ -n "$endpoint" ]] || fail "make dev did not say which emulator it uses"
sent="$(env -u INGESTLAYER_API_URL PORT="$PORT" AWS_ENDPOINT_URL="$endpoint" \
  make --no-print-directory webhook ARGS="send --source demo --file infra/examples/webhooks/demo-user-signed-up.json" 2>&1)" ||
  fail "make webhook send with PORT=$PORT: $sent"
[[ "$sent" == "202 Accepted"* ]] || fail "make webhook send with PORT=$PORT answered: $sent"
for _ in $(seq 1 100); do
  grep -q "#signups" "$LOG" && break
  sleep 0.2
done
grep -q "#signups" "$LOG" || { tail -n 40 "$LOG" >&2; fail "the stand-in printed no #signups message"; }
echo "make webhook send on PORT=$PORT: $sent"

echo "== dev-test: a feature.used event reaches Discord, Telegram, Notion, email and the signed webhook"
api_key="$(sed -nE 's/^  API key +([^ ]+) .*/\1/p' "$LOG" | head -n 1)"
[[ -n "$api_key" ]] || fail "the banner shows no API key"
answer="$(curl -sS "http://127.0.0.1:$PORT/v1/events" -H "Authorization: Bearer $api_key" \
  -H 'Content-Type: application/json' \
  -d '{"name":"feature.used","data":{"user_id":"u_42","feature":"csv.export","count":1,"plan":"free"}}')"
[[ "$answer" == *'"id"'* ]] || fail "POST /v1/events answered: $answer"
for want in "discord webhook" "telegram → " "[webhook receiver] verified feature.used" "notion ▸"; do
  for _ in $(seq 1 100); do
    grep -qF "$want" "$LOG" && break
    sleep 0.2
  done
  grep -qF "$want" "$LOG" || { tail -n 60 "$LOG" >&2; fail "make dev printed no \"$want\" line for the example pipelines"; }
done
sent_mail="$(curl -sS "$endpoint/_ingestlayer/ses-sent?to=team@example.com")"
[[ "$sent_mail" == *"team@example.com"* ]] || fail "SES on the emulator holds no email to team@example.com"
echo "feature.used: delivered to Discord, Telegram, Notion, SES and the webhook receiver"

if grep -q $'\e' "$LOG"; then
  grep -n $'\e' "$LOG" | head -n 5 >&2
  fail "make dev's output written to a file carries colour codes"
fi
echo "== dev-test: stopped, make dev stops the Postgres it started"
kill -TERM "$DEV_PID"
wait "$DEV_PID" 2>/dev/null || true
DEV_PID=""
if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$PG_PORT" 2>/dev/null; then
  fail "make dev, stopped, left its Postgres running on port $PG_PORT"
fi
rm -rf "${TMPDIR:-/tmp}/ingestlayer-pg/dev-$PG_PORT"
echo "dev-test: OK (log in ${LOG#"$ROOT"/})"
