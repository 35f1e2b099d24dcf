# Sourced by infra/dev.sh and infra/test.sh: starts the local AWS emulator (moto server
# from .tools/venv, through infra/emulator/moto_server.py, which keeps SQS FIFO group order
# as SQS does) unless AWS_ENDPOINT_URL already points at one, and stops it on exit.
#
#   start_emulator PORT     # PORT 0 picks a free port
#
# Afterwards AWS_ENDPOINT_URL points the AWS SDK at it, with fixed test credentials.

EMULATOR_PID=""
EMULATOR_FILES=""

# Stops the emulator this shell started, and removes its request recording (read only while
# it runs) and its log when nothing was written there (warnings and errors are kept).
stop_emulator() {
  if [[ -n "$EMULATOR_PID" ]] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  EMULATOR_PID=""
  if [[ -n "$EMULATOR_FILES" ]]; then
    rm -f "$EMULATOR_FILES.recording"
    [[ -s "$EMULATOR_FILES.log" ]] || rm -f "$EMULATOR_FILES.log"
  fi
  EMULATOR_FILES=""
  return 0
}

start_emulator() {
  local port="${1:-4566}"
  export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
  export AWS_REGION="$AWS_DEFAULT_REGION"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    if curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null; then
      echo "emulator: using the one at $AWS_ENDPOINT_URL"
      return 0
    fi
    echo "emulator: AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL does not answer; starting one" >&2
  fi
  if [[ "$port" == 0 ]]; then
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  fi
  EMULATOR_FILES="$ROOT/.tools/moto-$port"
  local log="$EMULATOR_FILES.log"
  # The request recorder (the trace test, ingestlayer-bench --requests) writes here.
  MOTO_RECORDER_FILEPATH="$EMULATOR_FILES.recording" \
    "$ROOT/.tools/venv/bin/python" "$ROOT/infra/emulator/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  EMULATOR_PID=$!
  trap stop_emulator EXIT
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" 2>/dev/null; then
      echo "emulator: moto server on $AWS_ENDPOINT_URL"
      return 0
    fi
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
      echo "emulator: moto server exited; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "emulator: moto server did not answer within 10 s; log in $log" >&2
  EMULATOR_FILES=""  # kept, whatever it holds: the message names it
  return 1
}
