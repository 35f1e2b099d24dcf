# Sourced by the scripts that run what cargo built: cargo_target_dir prints the workspace's
# target directory as cargo itself resolves it (CARGO_TARGET_DIR, relative to the repository
# root when relative; build.target-dir of a .cargo/config.toml; else <root>/target), so a
# binary is run from where `cargo build` put it, never from a guessed target/.
#
#   source infra/cargo-target.sh
#   bin="$(cargo_target_dir)/debug/ingestlayer-local"

cargo_target_dir() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  (cd "$root" && cargo metadata --format-version 1 --no-deps) |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
