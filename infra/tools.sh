#!/usr/bin/env bash
# Installs the project's Python-distributed tools into <repo>/.tools, only what is missing.
#
#   bash infra/tools.sh dev   what `make dev` needs: the moto server (local AWS emulator)
#   bash infra/tools.sh all   also what `make test` and `make sam-build` need (the default):
#                             cfn-lint, cargo-lambda (+ zig), awscli, and the AWS SAM CLI
#
#   .tools/venv      moto[server]; with `all` also cfn-lint, cargo-lambda, awscli
#   .tools/sam-venv  aws-sam-cli (own venv: its pins conflict with the others)
#
# Idempotent: a stamp file in each venv records the pinned requirements installed there; when
# it holds every requirement asked for (and the tools are there) the script prints nothing.
# Change a pin below and the next run that needs it upgrades that venv in place. Each install
# says what it installs and why before it starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"

DEV_REQS=(
  "moto[server]==5.2.5"
)
TEST_REQS=(
  "cfn-lint==1.58.0"
  "cargo-lambda==1.9.2"
  "awscli==1.46.3"
)
SAM_REQS=(
  "aws-sam-cli==1.170.0"
)

what="${1:-all}"
case "$what" in
  dev | all) ;;
  *)
    echo "usage: bash infra/tools.sh [dev|all]   (dev: make dev's emulator; all: also the test and deploy tools)" >&2
    exit 2
    ;;
esac

mkdir -p "$TOOLS"

# Serialize concurrent runs (two shells running `make dev` and `make test` at once).
exec 9>"$TOOLS/.tools.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# The package name of a requirement: `moto[server]==5.2.5` -> moto.
req_name() {
  local n="$1" c
  for c in '[' '=' '<' '>' '~' '!'; do n="${n%%"$c"*}"; done
  printf '%s\n' "$n"
}

# ensure_venv DIR WHY CHECK_BIN... -- REQUIREMENT...
ensure_venv() {
  local dir="$1" why="$2"; shift 2
  local bins=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do bins+=("$1"); shift; done
  shift
  local reqs=("$@")
  local stamp="$dir/.ingestlayer-tools"
  local have=""
  [[ -f "$stamp" ]] && have="$(cat "$stamp")"

  local ok=1 r b
  for r in "${reqs[@]}"; do
    grep -qxF -- "$r" <<<"$have" || ok=0
  done
  for b in "${bins[@]}"; do
    [[ -x "$dir/bin/$b" ]] || ok=0
  done
  if [[ $ok == 1 ]]; then
    return 0
  fi

  if [[ ! -x "$dir/bin/python" ]]; then
    "$PYTHON" -m venv "$dir"
  fi
  echo "tools: installing $why into ${dir#"$ROOT"/} (once): ${reqs[*]}"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
  for b in "${bins[@]}"; do
    if [[ ! -x "$dir/bin/$b" ]]; then
      echo "tools: ${dir#"$ROOT"/}/bin/$b missing after install" >&2
      exit 1
    fi
  done
  # The stamp keeps what was there before (by package name) and what was installed now.
  {
    local line keep
    while IFS= read -r line; do
      [[ -n "$line" ]] || continue
      keep=1
      for r in "${reqs[@]}"; do
        [[ "$(req_name "$line")" == "$(req_name "$r")" ]] && keep=0
      done
      [[ $keep == 1 ]] && printf '%s\n' "$line"
    done <<<"$have"
    printf '%s\n' "${reqs[@]}"
  } >"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
}

ensure_venv "$TOOLS/venv" "the local AWS emulator (moto server, about 320 MB)" \
  moto_server -- "${DEV_REQS[@]}"
[[ "$what" == dev ]] && exit 0

ensure_venv "$TOOLS/venv" "the test and deploy tools (cfn-lint, cargo-lambda with zig, awscli; about 600 MB more)" \
  cfn-lint cargo-lambda aws -- "${TEST_REQS[@]}"
ensure_venv "$TOOLS/sam-venv" "the AWS SAM CLI for make test and make sam-build (about 350 MB)" \
  sam -- "${SAM_REQS[@]}"

# cargo-lambda cross-links with zig; the ziglang wheel it depends on provides it as
# `python3 -m ziglang`, which cargo-zigbuild finds when .tools/venv/bin is on PATH.
if [[ ! -f "$TOOLS/venv/.ingestlayer-zig-ok" ]]; then
  "$TOOLS/venv/bin/python" -m ziglang version >/dev/null
  touch "$TOOLS/venv/.ingestlayer-zig-ok"
fi
