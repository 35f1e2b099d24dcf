// The event types hold: tsc accepts test/types/valid.ts (correct payloads, and mistakes under
// @ts-expect-error) and refuses test/types/invalid.ts with exactly the errors its lines name.
// Both import the built package by its published name, so run `npm run build` first.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const TSC = join(PACKAGE, 'node_modules/typescript/bin/tsc');

/** Runs tsc on a project; its exit code and output. */
async function typecheck(project) {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [TSC, '--noEmit', '-p', project],
      { cwd: PACKAGE });
    return { code: 0, output: stdout };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, output: `${e.stdout}${e.stderr}` };
  }
}

describe('event types', () => {
  it('accept the correct payloads and refuse every mistake marked @ts-expect-error', async () => {
    const { code, output } = await typecheck('test/types/tsconfig.json');
    assert.equal(code, 0, output);
  });

  it('report a wrong field, a wrong type, a missing field and an unknown name as errors', async () => {
    const source = readFileSync(join(PACKAGE, 'test/types/invalid.ts'), 'utf8').split('\n');
    const expected = source.flatMap((line, i) => {
      const marker = line.match(/\/\/ error (TS\d+)$/);
      return marker ? [`invalid.ts:${i + 1} ${marker[1]}`] : [];
    });
    assert.equal(expected.length, 5, 'invalid.ts lost its markers');
    const { code, output } = await typecheck('test/types/tsconfig.invalid.json');
    assert.notEqual(code, 0, 'invalid.ts compiled: the event types accept anything');
    const reported = [...output.matchAll(/invalid\.ts\((\d+),\d+\): error (TS\d+)/g)]
      .map((m) => `invalid.ts:${m[1]} ${m[2]}`);
    assert.deepEqual(reported, expected, output);
  });
});
