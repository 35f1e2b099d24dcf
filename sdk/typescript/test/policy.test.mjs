// The retry schedule and the reading of the API's answers, without I/O.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { RETRY_AFTER_CAP_MS, parseRetryAfter, retryDelay } from '../dist/retry.js';
import { interpret } from '../dist/wire.js';

const backoff = { baseDelayMs: 200, maxDelayMs: 5000 };

describe('retryDelay', () => {
  it('doubles the ceiling each retry up to maxDelayMs, drawing below it (full jitter)', () => {
    const top = () => 0.999999;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => retryDelay(n, undefined, backoff, top)),
      [199, 399, 799, 1599, 3199, 4999, 4999]);
    assert.equal(retryDelay(3, undefined, backoff, () => 0), 0);
  });

  it('waits exactly the Retry-After when there is one, at most 60 s', () => {
    assert.equal(retryDelay(1, 1500, backoff), 1500);
    assert.equal(retryDelay(1, 0, backoff), 0);
    assert.equal(retryDelay(1, 3_600_000, backoff), RETRY_AFTER_CAP_MS);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates', () => {
    const now = Date.parse('2026-11-27T09:30:00Z');
    assert.equal(parseRetryAfter('2', now), 2000);
    assert.equal(parseRetryAfter(' 1.5 ', now), 1500);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 09:30:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 09:29:00 GMT', now), 0);
  });

  it('ignores what is absent or unreadable', () => {
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter('-3'), undefined);
  });
});

describe('interpret', () => {
  it('decides each event of a mixed batch on its own, with pointers relative to the event', () => {
    const body = {
      accepted: 1, rejected: 1, failed: 1, results: [
        { index: 2, status: 'failed', code: 'unavailable', retryable: true, message: 'retry' },
        { index: 0, status: 'accepted', id: 'a', duplicate: true },
        { index: 1, status: 'rejected', code: 'schema_violation',
          errors: [{ pointer: '/events/1/data/count', message: 'not a number' }, { pointer: '/events/1', message: 'x' }] },
      ],
    };
    assert.deepEqual(interpret(202, body, 3), [
      { kind: 'accepted', duplicate: true },
      { kind: 'rejected', code: 'schema_violation', message: 'the server rejected the event', status: 202,
        details: [{ pointer: '/data/count', message: 'not a number' }, { pointer: '', message: 'x' }] },
      { kind: 'retry', code: 'unavailable', message: 'retry', status: 202 },
    ]);
  });

  it('retries an event the results leave out, and a 2xx without results', () => {
    const partial = { results: [{ index: 0, status: 'accepted', id: 'a', duplicate: false }] };
    assert.equal(interpret(202, partial, 2)[1].kind, 'retry');
    assert.deepEqual(interpret(200, undefined, 1).map((v) => [v.kind, v.code]), [['retry', 'invalid_response']]);
  });

  it('retries 429 and 5xx whole, and refuses other statuses whole with the error body', () => {
    assert.deepEqual(interpret(429, undefined, 2).map((v) => [v.kind, v.code]),
      [['retry', 'http_429'], ['retry', 'http_429']]);
    assert.deepEqual(interpret(503, { error: { code: 'unavailable', message: 'retry' } }, 1),
      [{ kind: 'retry', code: 'unavailable', message: 'retry', status: 503 }]);
    assert.deepEqual(interpret(413, { error: { code: 'batch_too_large', message: 'too many' } }, 1),
      [{ kind: 'rejected', code: 'batch_too_large', message: 'too many', status: 413, details: [] }]);
    assert.deepEqual(interpret(401, 'not json', 1).map((v) => [v.kind, v.code]), [['rejected', 'http_401']]);
  });

  it('refuses a failed item the server marks not retryable', () => {
    const body = { results: [{ index: 0, status: 'failed', code: 'gone', retryable: false }] };
    assert.equal(interpret(503, body, 1)[0].kind, 'rejected');
  });
});
