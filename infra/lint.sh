#!/usr/bin/env bash
# Code habits CI enforces: formatting, clippy on every target with warnings as errors, no
# unused dependencies, and the stage boundaries (infra/check-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
if ! command -v cargo-machete >/dev/null 2>&1; then
  echo "lint: installing cargo-machete (unused dependency check)" >&2
  cargo install --locked -q cargo-machete
fi
cargo machete
bash infra/check-deps.sh
