#!/usr/bin/env bash
# Lints, validates and builds template.yaml, offline and without Docker:
#
#   1. the workspace release profile keeps panic = "unwind" (see below)
#   2. slack-app-manifest.yaml and events/env.json match the code and template.yaml
#      (infra/deploy_files.py check)
#   3. cfn-lint template.yaml                       (warnings fail too)
#   4. sam validate --lint
#   5. sam build, as `sam build` from the root runs it (samconfig.toml)
#      -> .aws-sam/build/<Function>/bootstrap
#   6. the bootstraps exist and are ELF executables for the template's default
#      Architecture (arm64: cross-compiled by cargo-lambda with zig)
#   7. the SQS consumers were built with panic = "unwind"
#
# Needs the tools from `bash infra/tools.sh all`. Exits non-zero on any failure.
#
# About panic: `cargo lambda build --release` (what SAM's rust-cargolambda builder runs)
# passes `--config profile.release.panic="abort"` (and strip/lto/codegen-units) to
# cargo for every key the workspace root Cargo.toml's [profile.release] does not set
# itself. A `--config` beats both Cargo.toml and CARGO_PROFILE_RELEASE_PANIC in the
# environment, so the only switch that works is `panic = "unwind"` in the root
# [profile.release]; step 1 guards it and step 6 checks what cargo-lambda actually did.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# cargo-lambda and cfn-lint come from .tools/venv; its python3 also carries the ziglang
# wheel that cargo-zigbuild runs as `python3 -m ziglang`, so it goes first on PATH.
export PATH="$ROOT/.tools/venv/bin:${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"
SAM="$ROOT/.tools/sam-venv/bin/sam"
BUILD_DIR=".aws-sam/build"

# Functions in template.yaml: LogicalId:binary:consumes-SQS
FUNCTIONS=(
  "IngestFunction:ingest:no"
  "PipelineFunction:pipeline:yes"
  "SlackDeliveryFunction:slack-delivery:yes"
  "DestinationDeliveryFunction:destination-delivery:yes"
  "SlackConnectFunction:slack-connect:no"
)

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'template-check: FAIL: %s\n' "$*" >&2; exit 1; }

for t in cfn-lint cargo-lambda; do
  [[ -x "$ROOT/.tools/venv/bin/$t" ]] || fail "$t missing: run bash infra/tools.sh all"
done
[[ -x "$SAM" ]] || fail "sam missing: run bash infra/tools.sh all"
command -v cargo >/dev/null || fail "cargo not on PATH"

step "release profile keeps panic = \"unwind\""
"$ROOT/.tools/venv/bin/python" - <<'EOF' || fail "root Cargo.toml [profile.release] must set panic = \"unwind\" (else cargo-lambda builds with panic=abort)"
import sys, tomllib
with open("Cargo.toml", "rb") as f:
    panic = tomllib.load(f).get("profile", {}).get("release", {}).get("panic")
print(f"[profile.release] panic = {panic!r}")
sys.exit(0 if panic == "unwind" else 1)
EOF

step "slack-app-manifest.yaml and events/env.json"
"$ROOT/.tools/venv/bin/python" infra/deploy_files.py check || fail "slack-app-manifest.yaml or events/env.json does not match"

step "cfn-lint template.yaml"
cfn-lint -- template.yaml || fail "cfn-lint reported problems"
echo "no findings"

step "sam validate --lint"
"$SAM" validate --lint --template template.yaml || fail "sam validate --lint"

# The Architecture parameter's default is what `sam build` builds (ARCH overrides it).
default_arch="$("$ROOT/.tools/venv/bin/python" -c 'import sys; sys.path.insert(0, "infra"); import deploy_files; print(deploy_files.template()["Parameters"]["Architecture"]["Default"])')"
ARCH="${ARCH:-$default_arch}"
case "$ARCH" in
  arm64) elf="ARM aarch64"; lambda_flags=(--arm64) ;;
  x86_64) elf="x86-64"; lambda_flags=() ;;
  *) fail "Architecture $ARCH: expected arm64 or x86_64" ;;
esac

step "sam build ($ARCH)"
rm -rf "$BUILD_DIR"
start=$SECONDS
# Settings come from samconfig.toml, as for a user's `sam build` at the root; the build goes
# into cargo's target directory (CARGO_TARGET_DIR included; SAM asks cargo metadata).
"$SAM" build --parameter-overrides "Architecture=$ARCH" || fail "sam build"
echo "sam build took $((SECONDS - start)) s"

step "bootstraps"
for f in "${FUNCTIONS[@]}"; do
  IFS=: read -r id bin _ <<<"$f"
  boot="$BUILD_DIR/$id/bootstrap"
  [[ -f "$boot" && -x "$boot" ]] || fail "$boot missing or not executable"
  command -v file >/dev/null || fail "file(1) is needed to check the bootstraps' architecture"
  desc="$(file -b "$boot")"
  if [[ "$desc" != *"ELF 64-bit"*"$elf"* ]]; then
    fail "$boot is not an $ARCH ELF executable: $desc"
  fi
  printf '%-24s %-16s %8s bytes\n' "$id" "$bin" "$(stat -c %s "$boot")"
done

step "SQS consumers built with panic = unwind"
# Re-run the exact command SAM ran (same cwd, target dir and environment). With the
# artifacts fresh it compiles nothing; its debug log shows the --config overrides
# cargo-lambda added, and any recompilation would show the rustc flags.
target_dir="$(cargo metadata --no-deps --format-version 1 | "$ROOT/.tools/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
for f in "${FUNCTIONS[@]}"; do
  IFS=: read -r id bin sqs <<<"$f"
  [[ "$sqs" == yes ]] || continue
  codeuri="functions/$bin"
  log="$(cd "$codeuri" && CARGO_TARGET_DIR="$target_dir" RUST_LOG=cargo_lambda=debug \
    cargo lambda build --release "${lambda_flags[@]}" --bin "$bin" -v 2>&1)" || { printf '%s\n' "$log" >&2; fail "cargo lambda build ($bin)"; }
  overrides="$(grep -o 'release optimizations config=.*' <<<"$log" | head -n1 || true)"
  [[ -n "$overrides" ]] || fail "$bin: could not see cargo-lambda's release overrides (log format changed?)"
  if grep -q 'profile.release.panic' <<<"$overrides" || grep -q -- '-C panic=abort' <<<"$log"; then
    fail "$bin: cargo-lambda builds with panic=abort: $overrides"
  fi
  if grep -qE '^\s+Compiling ' <<<"$log"; then
    # Sources changed after sam build (others editing): the rustc flags above
    # were checked on this fresh compile instead.
    echo "note: $bin recompiled after sam build:"
    grep -E '^\s+(Dirty|Compiling) ' <<<"$log" | sed 's/^ */  /' | head -n 6 || true
  fi
  echo "$bin: no panic override (${overrides#release optimizations })"
done

printf '\ntemplate-check: OK\n'
