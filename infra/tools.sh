#!/usr/bin/env bash
# Installs the project's Python-distributed tools into <repo>/.tools, only when missing.
#
#   .tools/venv      moto[server] (local AWS emulator), cfn-lint, cargo-lambda (+ zig), awscli
#   .tools/sam-venv  aws-sam-cli (own venv: its pins conflict with the others)
#
# Idempotent: a stamp file in each venv records the pinned requirements that were
# installed; when it matches (and the tools are there) the script prints nothing.
# Change a pin below and the next run upgrades that venv in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
PYTHON="${PYTHON:-python3}"

VENV_REQS=(
  "moto[server]==5.2.5"
  "cfn-lint==1.58.0"
  "cargo-lambda==1.9.2"
  "awscli==1.46.3"
)
SAM_REQS=(
  "aws-sam-cli==1.170.0"
)

mkdir -p "$TOOLS"

# Serialize concurrent runs (two shells running `make dev` and `make test` at once).
exec 9>"$TOOLS/.tools.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# ensure_venv DIR CHECK_BIN... -- REQUIREMENT...
ensure_venv() {
  local dir="$1"; shift
  local bins=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do bins+=("$1"); shift; done
  shift
  local reqs=("$@")
  local stamp="$dir/.ingestlayer-tools"
  local want
  want="$(printf '%s\n' "${reqs[@]}")"

  local ok=1
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || ok=0
  local b
  for b in "${bins[@]}"; do
    [[ -x "$dir/bin/$b" ]] || ok=0
  done
  if [[ $ok == 1 ]]; then
    return 0
  fi

  if [[ ! -x "$dir/bin/python" ]]; then
    echo "tools: creating ${dir#"$ROOT"/}"
    "$PYTHON" -m venv "$dir"
  fi
  echo "tools: installing into ${dir#"$ROOT"/}: ${reqs[*]}"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
  for b in "${bins[@]}"; do
    if [[ ! -x "$dir/bin/$b" ]]; then
      echo "tools: ${dir#"$ROOT"/}/bin/$b missing after install" >&2
      exit 1
    fi
  done
  printf '%s\n' "$want" >"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
}

ensure_venv "$TOOLS/venv" moto_server cfn-lint cargo-lambda aws -- "${VENV_REQS[@]}"
ensure_venv "$TOOLS/sam-venv" sam -- "${SAM_REQS[@]}"

# cargo-lambda cross-links with zig; the ziglang wheel it depends on provides it as
# `python3 -m ziglang`, which cargo-zigbuild finds when .tools/venv/bin is on PATH.
if [[ ! -f "$TOOLS/venv/.ingestlayer-zig-ok" ]]; then
  "$TOOLS/venv/bin/python" -m ziglang version >/dev/null
  touch "$TOOLS/venv/.ingestlayer-zig-ok"
fi
