#!/usr/bin/env bash
# Interoperability of POST /v1/webhooks/{source} with the providers' own signing libraries,
# against ingestlayer-local (INGESTLAYER_LOCAL_BIN, else debug/ingestlayer-local in cargo's target
# directory) and a moto server (AWS_ENDPOINT_URL, else one is started). Installs node_modules with `npm ci` only when package-lock.json changed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if ! cmp -s package-lock.json node_modules/.ci-lock; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cp package-lock.json node_modules/.ci-lock
fi
exec node --test --test-reporter=spec interop.test.mjs
