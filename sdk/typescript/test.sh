#!/usr/bin/env bash
# sdk/typescript: install the dev dependencies (npm ci, only when package-lock.json changed
# since the last install), build, check that src/events.gen.ts is current with the schemas,
# run every test. infra/test.sh calls it after cargo test, with AWS_ENDPOINT_URL pointing at
# its moto server and ingestlayer-local built (in cargo's target directory, CARGO_TARGET_DIR
# included; INGESTLAYER_LOCAL_BIN overrides it); alone, the end-to-end test starts
# its own moto server from .tools/ (bash infra/tools.sh dev installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! cmp -s package-lock.json node_modules/.ci-lock; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cp package-lock.json node_modules/.ci-lock
fi
echo "== sdk/typescript: build"
npm run --silent build
echo "== sdk/typescript: generated event types"
npm run --silent gen:check
echo "== sdk/typescript: tests"
node --test --test-reporter=spec test/*.test.mjs
