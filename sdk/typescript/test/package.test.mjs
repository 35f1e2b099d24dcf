// The package as an installer meets it: one license with the repository, and ES modules that
// CommonJS code can still load where Node.js has require(esm).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = join(PACKAGE, '../..');
const manifest = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8'));

describe('package', () => {
  it('carries the workspace license, whose text is at the repository root', () => {
    const cargo = readFileSync(join(ROOT, 'Cargo.toml'), 'utf8');
    const workspace = /^\[workspace\.package\][^[]*?^license\s*=\s*"([^"]+)"/m.exec(cargo)?.[1];
    assert.equal(workspace, 'Apache-2.0');
    assert.equal(manifest.license, workspace);
    const lock = JSON.parse(readFileSync(join(PACKAGE, 'package-lock.json'), 'utf8'));
    assert.equal(lock.packages[''].license, workspace);
    const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    assert.match(text, /Apache License\s+Version 2\.0, January 2004/);
    assert.match(text, /END OF TERMS AND CONDITIONS/);
  });

  it('is ES modules that require() loads where Node.js has require(esm), and refuses clearly elsewhere', async () => {
    assert.equal(manifest.type, 'module');
    // Resolved through the package's own exports map, as an installed copy would be.
    const require = createRequire(join(PACKAGE, 'index.cjs'));
    const imported = await import('@ingestlayer/sdk');
    if (process.features.require_module) {
      const required = require('@ingestlayer/sdk');
      assert.equal(required.ingest, imported.ingest);
      assert.deepEqual(Object.keys(required).sort(), Object.keys(imported).sort());
    } else {
      assert.throws(() => require('@ingestlayer/sdk'), { code: 'ERR_REQUIRE_ESM' });
    }
  });
});
