// The client against a scripted ingest API over HTTP (test/support/fake-api.mjs): batching by
// size, time and bytes; retries, Retry-After and ids; how each kind of answer surfaces.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  ConfigError,
  EventRejectedError,
  IngestError,
  IngestLayer,
  RetriesExhaustedError,
  close as closeDefault,
  ingest,
} from '../dist/index.js';
import { acceptAll, startFakeApi } from './support/fake-api.mjs';

const KEY = 'il_test_secret_key_0123456789';
const usage = (n = 1) => ({ user_id: `u_${n}`, feature: 'csv.export', count: n, plan: 'pro' });

/** Servers and clients of the running test, closed after it. */
const cleanup = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()();
});

async function setup(answer, options = {}) {
  const api = await startFakeApi(answer);
  cleanup.push(api.close);
  const errors = [];
  const client = new IngestLayer({
    endpoint: api.url,
    apiKey: KEY,
    retryBaseDelayMs: 10,
    onError: (e) => errors.push(e),
    ...options,
  });
  cleanup.push(() => client.close());
  return { api, client, errors };
}

describe('batching', () => {
  it('sends a full batch at once and keeps the rest until the time bound or flush', async () => {
    const { api, client } = await setup(undefined, { batchSize: 3, flushIntervalMs: 60_000 });
    const sent = Array.from({ length: 7 }, (_, i) => client.ingest('feature.used', usage(i)));
    await Promise.all(sent.slice(0, 6));
    assert.deepEqual(api.requests.map((r) => r.ids.length), [3, 3]);
    await client.flush();
    assert.deepEqual(api.requests.map((r) => r.ids.length), [3, 3, 1]);
    const results = await Promise.all(sent);
    assert.deepEqual(api.requests.flatMap((r) => r.ids), results.map((r) => r.id));
    assert.ok(results.every((r) => r.duplicate === false));
  });

  it('sends a partial batch together once its oldest event has waited flushIntervalMs', async () => {
    const { api, client } = await setup(undefined, { flushIntervalMs: 150 });
    const start = performance.now();
    await Promise.all([1, 2, 3].map((n) => client.ingest('feature.used', usage(n))));
    const waited = api.requests[0].at - start;
    assert.equal(api.requests.length, 1);
    assert.equal(api.requests[0].ids.length, 3);
    assert.ok(waited >= 140 && waited < 1000, `sent after ${waited} ms`);
  });

  it('splits batches so no request body exceeds 5 MiB', async () => {
    const { api, client } = await setup(undefined, { flushIntervalMs: 60_000 });
    const big = 'x'.repeat(240 * 1024);
    const sent = Array.from({ length: 24 }, (_, i) =>
      client.ingestUntyped('sdk.blob', { i, big }));
    await client.flush();
    await Promise.all(sent);
    assert.equal(api.requests.length, 2);
    assert.equal(api.requests[0].ids.length + api.requests[1].ids.length, 24);
    assert.ok(api.requests.every((r) => r.bytes <= 5 * 1024 * 1024), api.requests.map((r) => r.bytes).join());
  });

  it('keeps at most four batch requests in flight', async () => {
    let live = 0;
    let most = 0;
    const { api, client } = await setup(async (req) => {
      live += 1;
      most = Math.max(most, live);
      await new Promise((r) => setTimeout(r, 50));
      live -= 1;
      return acceptAll(req.body);
    }, { batchSize: 1 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => client.ingest('feature.used', usage(i))));
    assert.equal(api.requests.length, 10);
    assert.equal(most, 4);
  });

  it('puts an id given twice into separate batches (the server refuses one id twice in a batch)', async () => {
    const seen = new Set();
    const { api, client } = await setup((req) => {
      const results = req.body.events.map((e, index) => {
        const duplicate = seen.has(e.id);
        seen.add(e.id);
        return { index, status: 'accepted', id: e.id, duplicate };
      });
      return { status: 202, body: { accepted: results.length, rejected: 0, failed: 0, results } };
    });
    const first = client.ingest('feature.used', usage(1), { id: 'order-1' });
    const second = client.ingest('feature.used', usage(1), { id: 'order-1' });
    await client.flush();
    assert.deepEqual(await first, { id: 'order-1', duplicate: false });
    assert.deepEqual(await second, { id: 'order-1', duplicate: true });
    assert.deepEqual(api.requests.map((r) => r.ids), [['order-1'], ['order-1']]);
  });

  it('sends the event as the API expects it, with the key as a bearer token', async () => {
    const { api, client } = await setup(undefined, { flushIntervalMs: 0 });
    const time = new Date('2026-11-27T09:30:00Z');
    const { id } = await client.ingest('feature.used', usage(1), { time });
    const [req] = api.requests;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/v1/events/batch');
    assert.equal(req.headers.authorization, `Bearer ${KEY}`);
    assert.equal(req.headers['content-type'], 'application/json');
    assert.deepEqual(req.body, {
      events: [{ name: 'feature.used', id, time: '2026-11-27T09:30:00.000Z', data: usage(1) }],
    });
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('retries', () => {
  it('waits the Retry-After of a 429, then resends the same ids', async () => {
    const { api, client } = await setup((req, n) =>
      n === 0
        ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down' } } }
        : acceptAll(req.body), { retryBaseDelayMs: 1, flushIntervalMs: 0 });
    const results = await Promise.all([1, 2].map((n) => client.ingest('feature.used', usage(n))));
    assert.equal(api.requests.length, 2);
    const waited = api.requests[1].at - api.requests[0].at;
    assert.ok(waited >= 990, `retried after ${waited} ms`);
    assert.deepEqual(api.requests[1].ids, api.requests[0].ids);
    assert.deepEqual(results.map((r) => r.id), api.requests[0].ids);
  });

  it('retries 500, 502 and 503 answers with the same ids until accepted', async () => {
    const failures = [500, 502, 503];
    const { api, client } = await setup((req, n) =>
      n < failures.length ? { status: failures[n], body: { error: { code: 'unavailable', message: 'retry' } } } : acceptAll(req.body),
    { flushIntervalMs: 0 });
    const { id } = await client.ingest('feature.used', usage(1));
    assert.equal(api.requests.length, 4);
    assert.ok(api.requests.every((r) => r.ids.length === 1 && r.ids[0] === id));
  });

  it('retries after a dropped connection with the same ids', async () => {
    const { api, client } = await setup((req, n) => (n === 0 ? 'drop' : acceptAll(req.body)),
      { flushIntervalMs: 0 });
    const results = await Promise.all([1, 2, 3].map((n) => client.ingest('feature.used', usage(n))));
    assert.equal(api.requests.length, 2);
    assert.deepEqual(api.requests[1].ids, api.requests[0].ids);
    assert.deepEqual(results.map((r) => r.id), api.requests[0].ids);
  });

  it('retries a request that got no answer within requestTimeoutMs', async () => {
    const { api, client } = await setup((req, n) => ({ ...acceptAll(req.body), delayMs: n === 0 ? 1000 : 0 }),
      { flushIntervalMs: 0, requestTimeoutMs: 200 });
    const { id } = await client.ingest('feature.used', usage(1));
    assert.equal(api.requests.length, 2);
    assert.deepEqual(api.requests.map((r) => r.ids), [[id], [id]]);
  });

  it('resends only the events that failed, and settles the others at once', async () => {
    const { api, client } = await setup((req, n) => {
      if (n > 0) return acceptAll(req.body);
      const [a, b, c] = req.body.events;
      return {
        status: 202,
        body: {
          accepted: 1, rejected: 1, failed: 1, results: [
            { index: 0, status: 'accepted', id: a.id, duplicate: false },
            { index: 1, status: 'failed', code: 'unavailable', retryable: true, message: 'retry this event with the same id' },
            { index: 2, status: 'rejected', code: 'schema_violation',
              errors: [{ pointer: '/events/2/data/count', message: '"3" is not of type "number"' }] },
          ],
        },
      };
    }, { flushIntervalMs: 0 });
    const [a, b, c] = [1, 2, 3].map((n) => client.ingest('feature.used', usage(n)));
    const rejected = await c.catch((e) => e);
    assert.ok(rejected instanceof EventRejectedError);
    assert.equal(rejected.code, 'schema_violation');
    assert.deepEqual(rejected.details, [{ pointer: '/data/count', message: '"3" is not of type "number"' }]);
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(api.requests.length, 2);
    assert.deepEqual(api.requests[1].ids, [rb.id]);
    assert.equal(api.requests[0].ids[1], rb.id);
    assert.equal(api.requests[0].ids[0], ra.id);
  });

  it('gives up after maxRetries with RetriesExhaustedError carrying the last answer', async () => {
    const { api, client, errors } = await setup(() => ({ status: 503, body: { error: { code: 'unavailable', message: 'down' } } }),
      { maxRetries: 2, flushIntervalMs: 0 });
    const error = await client.ingest('feature.used', usage(1)).catch((e) => e);
    assert.ok(error instanceof RetriesExhaustedError);
    assert.equal(error.code, 'unavailable');
    assert.equal(error.status, 503);
    assert.equal(error.attempts, 3);
    assert.equal(api.requests.length, 3);
    assert.deepEqual(new Set(api.requests.map((r) => r.ids[0])).size, 1);
    assert.equal(errors.length, 0, 'an awaited error went to onError too');
  });
});

describe('refusals', () => {
  it('rejects every event of a 400 with its own code and field errors, without retrying', async () => {
    const { api, client } = await setup((req) => ({
      status: 400,
      body: {
        accepted: 0, rejected: 2, failed: 0, results: req.body.events.map((_, index) => ({
          index, status: 'rejected', code: 'schema_violation',
          errors: [{ pointer: `/events/${index}/data/plan`, message: '"plan" is a required property' }],
        })),
      },
    }), { flushIntervalMs: 0 });
    const errors = await Promise.all([1, 2].map((n) =>
      client.ingestUntyped('feature.used.v2', { n }).catch((e) => e)));
    assert.equal(api.requests.length, 1);
    for (const e of errors) {
      assert.ok(e instanceof EventRejectedError);
      assert.equal(e.code, 'schema_violation');
      assert.equal(e.status, 400);
      assert.deepEqual(e.details, [{ pointer: '/data/plan', message: '"plan" is a required property' }]);
      assert.match(e.message, /\/data\/plan: "plan" is a required property/);
    }
  });

  it('rejects on 401 without retrying, and the key appears in no error', async () => {
    const { api, client, errors } = await setup(() => ({
      status: 401, body: { error: { code: 'unauthorized', message: 'the API key is unknown or revoked' } },
    }), { flushIntervalMs: 0 });
    const awaited = await client.ingest('feature.used', usage(1)).catch((e) => e);
    client.ingest('feature.used', usage(2)); // nobody awaits this one
    await client.flush();
    assert.equal(api.requests.length, 2);
    assert.ok(awaited instanceof EventRejectedError);
    assert.equal(awaited.code, 'unauthorized');
    assert.equal(awaited.status, 401);
    assert.equal(errors.length, 1);
    for (const e of [awaited, ...errors]) {
      assert.ok(!JSON.stringify({ ...e, message: e.message, stack: e.stack }).includes(KEY));
    }
  });

  it('rejects a 413 without retrying', async () => {
    const { api, client } = await setup(() => ({
      status: 413, body: { error: { code: 'payload_too_large', message: 'the body is too large' } },
    }), { flushIntervalMs: 0 });
    const error = await client.ingest('feature.used', usage(1)).catch((e) => e);
    assert.equal(error.code, 'payload_too_large');
    assert.equal(api.requests.length, 1);
  });

  it('rejects an event above 256 KiB before sending anything', async () => {
    const { api, client } = await setup(undefined, { flushIntervalMs: 0 });
    const error = await client.ingestUntyped('sdk.blob', { big: 'x'.repeat(256 * 1024) }).catch((e) => e);
    assert.ok(error instanceof EventRejectedError);
    assert.equal(error.code, 'event_too_large');
    assert.equal(api.requests.length, 0);
  });

  it('refuses events after close, having sent the ones before', async () => {
    const { api, client } = await setup(undefined, { flushIntervalMs: 60_000 });
    const before = client.ingest('feature.used', usage(1));
    await client.close();
    assert.equal((await before).duplicate, false);
    const after = await client.ingest('feature.used', usage(2)).catch((e) => e);
    assert.ok(after instanceof IngestError);
    assert.equal(after.code, 'client_closed');
    assert.equal(api.requests.length, 1);
  });

  it('refuses events beyond maxQueueSize with queue_full', async () => {
    const { client } = await setup(undefined, { flushIntervalMs: 60_000, maxQueueSize: 2 });
    const kept = [1, 2].map((n) => client.ingest('feature.used', usage(n)));
    const error = await client.ingest('feature.used', usage(3)).catch((e) => e);
    assert.equal(error.code, 'queue_full');
    await client.flush();
    await Promise.all(kept);
  });
});

describe('errors nobody awaits', () => {
  const badRequest = () => ({
    status: 400, body: { error: { code: 'invalid_event', message: 'the event is invalid',
      details: [{ pointer: '/events/0/name', message: 'event name is empty' }] } },
  });

  it('go to onError, and awaited ones do not', async () => {
    const { client, errors } = await setup(badRequest, { flushIntervalMs: 0 });
    client.ingest('feature.used', usage(1), { id: 'fire-and-forget' });
    const awaited = await client.ingest('feature.used', usage(2), { id: 'awaited' }).catch((e) => e);
    await client.flush();
    assert.equal(awaited.eventId, 'awaited');
    assert.deepEqual(errors.map((e) => e.eventId), ['fire-and-forget']);
    assert.ok(errors[0] instanceof EventRejectedError);
  });

  it('are logged by default with the event name, id and code, never the data or the key', async (t) => {
    const lines = [];
    t.mock.method(console, 'error', (...args) => lines.push(args.join(' ')));
    const api = await startFakeApi(badRequest);
    cleanup.push(api.close);
    const client = new IngestLayer({ endpoint: api.url, apiKey: KEY, flushIntervalMs: 0 });
    client.ingest('feature.used', { ...usage(1), user_id: 'secret-user-42' }, { id: 'evt-1' });
    await client.close();
    assert.equal(lines.length, 1);
    assert.equal(lines[0],
      'ingestlayer: feature.used event evt-1 was not accepted: invalid_event at /name');
    assert.ok(!lines[0].includes('secret-user-42') && !lines[0].includes(KEY));
  });
});

describe('configuration', () => {
  it('the module-level ingest reads INGESTLAYER_API_URL and INGESTLAYER_API_KEY', async (t) => {
    const api = await startFakeApi();
    cleanup.push(api.close);
    t.after(closeDefault);
    const saved = { ...process.env };
    t.after(() => {
      process.env = saved;
    });
    process.env.INGESTLAYER_API_URL = `${api.url}/`;
    process.env.INGESTLAYER_API_KEY = 'il_from_env';
    const pending = ingest('feature.used', usage(1));
    await closeDefault();
    const { id } = await pending;
    assert.deepEqual(api.requests[0].ids, [id]);
    assert.equal(api.requests[0].headers.authorization, 'Bearer il_from_env');
    assert.equal(api.requests[0].url, '/v1/events/batch');
  });

  it('keeps a path in the endpoint (an API Gateway stage)', async () => {
    const { api, client } = await setup(() => ({ status: 404, body: { error: { code: 'not_found', message: 'no route' } } }),
      { flushIntervalMs: 0 });
    await client.ingest('feature.used', usage(1)).catch(() => {});
    assert.equal(api.requests[0].url, '/v1/events/batch');
    const staged = new IngestLayer({ endpoint: `${api.url}/prod`, apiKey: KEY, flushIntervalMs: 0 });
    cleanup.push(() => staged.close());
    const error = await staged.ingest('feature.used', usage(1)).catch((e) => e);
    assert.equal(api.requests[1].url, '/prod/v1/events/batch');
    assert.equal(error.code, 'not_found');
  });

  it('throws ConfigError naming what is missing or wrong', (t) => {
    const saved = { ...process.env };
    t.after(() => {
      process.env = saved;
    });
    delete process.env.INGESTLAYER_API_URL;
    delete process.env.INGESTLAYER_ENDPOINT;
    delete process.env.INGESTLAYER_API_KEY;
    assert.throws(() => new IngestLayer({ apiKey: KEY }), (e) => e instanceof ConfigError && /INGESTLAYER_API_URL/.test(e.message));
    assert.throws(() => new IngestLayer({ endpoint: 'http://127.0.0.1:1' }), /INGESTLAYER_API_KEY/);
    process.env.INGESTLAYER_ENDPOINT = 'http://127.0.0.1:1';
    process.env.INGESTLAYER_API_KEY = KEY;
    assert.doesNotThrow(() => new IngestLayer());
    assert.throws(() => new IngestLayer({ batchSize: 501 }), /batchSize must be an integer from 1 to 500/);
    assert.throws(() => new IngestLayer({ endpoint: 'ftp://x' }), /http\(s\) URL/);
  });
});
