#!/usr/bin/env bash
# The local Postgres of `make dev` and `make test`: Debian's `postgresql` server binaries,
# started here on loopback with TLS (a certificate from a CA made here) and a password, so
# the warehouse connects to it as to a database in AWS: over TLS, verified.
#
# Sourced (infra/dev.sh, infra/test.sh):
#   start_postgres PORT NAME   # PORT 0 picks a free one; NAME names the data folder
#   stop_postgres
# Afterwards DATABASE_URL points at it. When DATABASE_URL is already set, that database is
# used instead and nothing is started.
#
# Run (the tests, which stop and start a database of their own mid-run):
#   bash infra/postgres.sh start PORT NAME   # prints DATABASE_URL=… and PGDATA=…
#   bash infra/postgres.sh stop PGDATA       # stops, keeping the data
#   bash infra/postgres.sh resume PGDATA     # starts it again on the same port
#
# The data lives in ${TMPDIR:-/tmp}/ingestlayer-pg/NAME: Postgres refuses to run as root, so
# as root the server runs as the `postgres` user (the Debian package creates it), which must
# be able to reach the folder. The CA certificate is NAME/tls/ca.pem; DATABASE_URL names it
# (`sslrootcert`).

PG_PID_DATA=""

# The folder of the server binaries: PG_BIN, pg_config's, or Debian's newest.
# Every found path returns 0 explicitly: a bare `return` in a function called from a trap
# (dev.sh stops Postgres from its EXIT/TERM trap) returns the status of the command the
# signal interrupted, and stop_postgres then left the server running.
pg_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    echo "$PG_BIN"
    return 0
  fi
  local newest
  newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [[ -n "$newest" && -x "$newest/initdb" ]]; then
    echo "$newest"
    return 0
  fi
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
    return 0
  fi
  echo "postgres: no Postgres server binaries (initdb, pg_ctl). Install Debian's package: apt-get install postgresql (or set PG_BIN, or DATABASE_URL to a database of yours)" >&2
  return 1
}

# Runs a server binary as the user that may run it (never root).
pg_as() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pg_init DATA: a new cluster with TLS and a password, owned by the user that runs it.
pg_init() {
  local data="$1" bin
  bin="$(pg_bin)" || return 1
  mkdir -p "$data/tls"
  local tls="$data/tls"
  # A CA of this folder's own, and a server certificate it signs for 127.0.0.1 and localhost.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ingestlayer local CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls/ext.cnf" -out "$tls/server.pem" >/dev/null 2>&1
  echo "ingestlayer" >"$tls/pwfile"
  mkdir -p "$data/cluster"
  if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres "$data"
    chmod 755 "$data" "$tls"
    chmod 644 "$tls/ca.pem"
  fi
  chmod 600 "$tls/server.key"
  pg_as "$bin/initdb" -D "$data/cluster" -U ingestlayer --pwfile="$tls/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$data/initdb.log" 2>&1 || {
    echo "postgres: initdb failed; its log:" >&2
    cat "$data/initdb.log" >&2
    return 1
  }
  cat >>"$data/cluster/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
ssl = on
ssl_cert_file = '$tls/server.pem'
ssl_key_file = '$tls/server.key'
max_connections = 200
EOF
}

# pg_up DATA PORT: starts the cluster in DATA on PORT and waits until it answers.
pg_up() {
  local data="$1" port="$2" bin
  bin="$(pg_bin)" || return 1
  echo "$port" >"$data/port"
  pg_as "$bin/pg_ctl" -D "$data/cluster" -l "$data/server.log" -o "-p $port" -w -t 30 start >/dev/null || {
    echo "postgres: the server did not start; its log:" >&2
    tail -20 "$data/server.log" >&2
    return 1
  }
}

# pg_down DATA: stops the cluster in DATA (fast: open connections are cut), keeping its data.
pg_down() {
  local data="$1" bin
  bin="$(pg_bin)" || return 1
  [[ -f "$data/cluster/postmaster.pid" ]] || return 0
  pg_as "$bin/pg_ctl" -D "$data/cluster" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

pg_url() { # DATA PORT
  echo "postgres://ingestlayer:ingestlayer@127.0.0.1:$2/ingestlayer?sslrootcert=$1/tls/ca.pem"
}

# pg_start NAME PORT: a cluster in ${TMPDIR:-/tmp}/ingestlayer-pg/NAME (made on first use,
# reused after), started on PORT (0: a free one), with its `ingestlayer` database. Prints
# DATABASE_URL=… and PGDATA=….
pg_start() {
  local name="$1" port="$2" base data
  base="${TMPDIR:-/tmp}/ingestlayer-pg"
  mkdir -p "$base"
  chmod 1777 "$base" 2>/dev/null || true
  data="$base/$name"
  [[ "$port" == 0 ]] && port="$(pg_free_port)"
  if [[ ! -f "$data/cluster/PG_VERSION" ]]; then
    rm -rf "$data"
    pg_init "$data" || return 1
  fi
  pg_down "$data"
  pg_up "$data" "$port" || return 1
  local bin
  bin="$(pg_bin)"
  if ! pg_as "$bin/psql" -h "$data" -p "$port" -U ingestlayer -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'ingestlayer'" | grep -q 1; then
    pg_as "$bin/psql" -h "$data" -p "$port" -U ingestlayer -d postgres -qc "CREATE DATABASE ingestlayer" >/dev/null
  fi
  echo "DATABASE_URL=$(pg_url "$data" "$port")"
  echo "PGDATA=$data"
}

start_postgres() { # PORT NAME
  if [[ -n "${DATABASE_URL:-}" ]]; then
    # The password is never printed.
    echo "postgres: using DATABASE_URL (${DATABASE_URL%%://*}://…@${DATABASE_URL#*@})"
    return 0
  fi
  local out
  out="$(pg_start "$2" "$1")" || return 1
  DATABASE_URL="$(sed -n 's/^DATABASE_URL=//p' <<<"$out")"
  PG_PID_DATA="$(sed -n 's/^PGDATA=//p' <<<"$out")"
  export DATABASE_URL
  echo "postgres: Postgres $("$(pg_bin)/postgres" --version | awk '{print $3}') on 127.0.0.1:$(cat "$PG_PID_DATA/port") (data in $PG_PID_DATA, TLS with the CA in $PG_PID_DATA/tls/ca.pem)"
}

stop_postgres() {
  if [[ -n "$PG_PID_DATA" ]]; then
    pg_down "$PG_PID_DATA"
  fi
  PG_PID_DATA=""
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    start) pg_start "${3:?usage: postgres.sh start PORT NAME}" "${2:?usage: postgres.sh start PORT NAME}" ;;
    stop) pg_down "${2:?usage: postgres.sh stop PGDATA}" ;;
    resume) pg_up "${2:?usage: postgres.sh resume PGDATA}" "$(cat "$2/port")" ;;
    remove)
      pg_down "${2:?usage: postgres.sh remove PGDATA}"
      rm -rf "$2"
      ;;
    *)
      echo "usage: bash infra/postgres.sh start PORT NAME | stop PGDATA | resume PGDATA | remove PGDATA" >&2
      exit 2
      ;;
  esac
fi
