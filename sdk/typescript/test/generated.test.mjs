// src/events.gen.ts is what `npm run gen` makes of the schemas today, and the generator takes
// every schema in the folder.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCHEMAS = join(PACKAGE, '../../functions/ingestlayer/schemas');
const GENERATOR = join(PACKAGE, 'scripts/gen-events.mjs');

/** Runs the generator into a temporary file; what it wrote. */
async function generate(t, ...args) {
  const dir = mkdtempSync(join(tmpdir(), 'ingestlayer-gen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'events.gen.ts');
  await promisify(execFile)(process.execPath, [GENERATOR, '--out', out, ...args]);
  return readFileSync(out, 'utf8');
}

describe('generated event types', () => {
  it('src/events.gen.ts is current with the schemas (else run `npm run gen`)', async (t) => {
    const fresh = await generate(t);
    const committed = readFileSync(join(PACKAGE, 'src/events.gen.ts'), 'utf8');
    assert.equal(committed, fresh, 'src/events.gen.ts is stale: run `npm run gen` in sdk/typescript');
  });

  it('map every schema file to its event name', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ingestlayer-schemas-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(join(SCHEMAS, 'feature.used.json'), join(dir, 'feature.used.json'));
    writeFileSync(join(dir, 'invoice.payment_failed.json'), JSON.stringify({
      type: 'object',
      properties: { invoice_id: { type: 'string' }, amount_cents: { type: 'integer' } },
      required: ['invoice_id'],
    }));
    const code = await generate(t, '--schemas', dir);
    assert.match(code, /export interface EventMap \{\n {2}"feature\.used": FeatureUsed;\n {2}"invoice\.payment_failed": InvoicePaymentFailed;\n\}/);
    assert.match(code, /export interface InvoicePaymentFailed \{[^}]*invoice_id: string;[^}]*amount_cents\?: number;/);
  });
});
