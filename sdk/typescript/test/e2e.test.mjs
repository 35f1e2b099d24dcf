// The SDK against the real ingest API over HTTP: `ingestlayer-local dev` on a moto server
// (launched by infra/node/local-stack.mjs), with a fault-injecting proxy in between that loses
// the answer to the first batch: the server stores and queues the batch, the SDK sees 503 and
// retries it with the same ids, and the server's idempotency keeps every event once.
//
// Needs ingestlayer-local in cargo's target directory (cargo build -p ingestlayer-local) and the
// moto server in .tools/ (bash infra/tools.sh dev), or AWS_ENDPOINT_URL pointing at a running one.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EventRejectedError, IngestLayer } from '../dist/index.js';
import { scanTable, startStack, tail } from '../../../infra/node/local-stack.mjs';

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');

/**
 * A proxy to `upstream` that forwards every request, but answers the first batch request
 * with 503 after forwarding it, as if the answer had been lost on the way back. Records each
 * batch request's ids with the upstream's answer.
 */
async function startLossyProxy(upstream) {
  const batches = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const forwarded = await fetch(new URL(req.url, upstream), {
      method: req.method,
      headers: { authorization: req.headers.authorization, 'content-type': req.headers['content-type'] },
      body: req.method === 'POST' ? body : undefined,
    });
    const answer = await forwarded.text();
    let status = forwarded.status;
    let sent = answer;
    if (req.url === '/v1/events/batch') {
      const lost = batches.length === 0;
      batches.push({
        ids: JSON.parse(body.toString('utf8')).events.map((e) => e.id),
        upstream: { status, body: JSON.parse(answer) },
      });
      if (lost) {
        status = 503;
        sent = JSON.stringify({ error: { code: 'unavailable', message: 'injected by the test proxy' } });
      }
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(sent);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    batches,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

describe('the SDK against the real ingest API', { timeout: 90_000 }, () => {
  const apiKey = `il_${randomBytes(20).toString('hex')}`;
  let stack;
  let proxy;

  before(async () => {
    // A random resource prefix, so the stack can share a moto server with other tests.
    stack = await startStack({ artifacts: ARTIFACTS, prefix: `sdk-${randomBytes(4).toString('hex')}`, apiKey });
    proxy = await startLossyProxy(stack.apiUrl);
  }, { timeout: 60_000 });

  after(async () => {
    await proxy?.close();
    await stack?.stop();
  });

  it('a batch of 50 arrives as 50 events with one retry after an injected 503 and no duplicates', async () => {
    const client = new IngestLayer({
      endpoint: proxy.url, apiKey, batchSize: 50, flushIntervalMs: 60_000, retryBaseDelayMs: 50,
    });
    const run = randomBytes(4).toString('hex');
    // sdk.test has no pipeline, so nothing is posted to Slack.
    const results = await Promise.all(Array.from({ length: 50 }, (_, n) =>
      client.ingestUntyped('sdk.test', { run, n })));
    await client.close();

    const ids = results.map((r) => r.id);
    assert.equal(new Set(ids).size, 50);
    assert.equal(proxy.batches.length, 2, 'batch requests that reached the proxy');
    const [first, retry] = proxy.batches;
    assert.deepEqual(first.ids, ids);
    assert.deepEqual(retry.ids, ids, 'the retry carries the same ids');
    // The server took the first batch whole; its answer was what the proxy lost.
    assert.equal(first.upstream.status, 202);
    assert.ok(first.upstream.body.results.every((r) => r.status === 'accepted' && r.duplicate === false),
      JSON.stringify(first.upstream.body));
    assert.equal(retry.upstream.status, 202);
    // The server scopes a client's id by the API key's source (`local` in the local stack).
    const scoped = ids.map((id) => `local:${id}`);
    assert.deepEqual(retry.upstream.body.results.map((r) => [r.status, r.id, r.duplicate]),
      scoped.map((id) => ['accepted', id, true]));
    assert.ok(results.every((r) => r.duplicate === true));

    const stored = (await scanTable(stack.awsEndpoint, stack.eventsTable))
      .filter((item) => item.name === 'sdk.test');
    assert.deepEqual(stored.map((item) => item.id).sort(), [...scoped].sort(), 'each id stored exactly once');
    const envelopes = stored.map((item) => JSON.parse(item.envelope));
    assert.deepEqual(envelopes.map((e) => e.data.n).sort((a, b) => a - b), [...Array(50).keys()]);
    assert.ok(envelopes.every((e) => e.data.run === run && e.source === stored[0].source));
  });

  it('a schema violation comes back with the server\'s code and the field\'s pointer', async () => {
    const client = new IngestLayer({ endpoint: stack.apiUrl, apiKey, flushIntervalMs: 0 });
    const [good, bad] = await Promise.allSettled([
      client.ingest('feature.used', { user_id: 'u_1', feature: 'profile.view', count: 1, plan: 'free' }),
      // What the types refuse, sent from JavaScript: count as a string.
      client.ingest('feature.used', { user_id: 'u_1', feature: 'profile.view', count: '3', plan: 'free' }),
    ]);
    await client.close();
    assert.equal(good.status, 'fulfilled', String(good.reason));
    assert.ok(bad.reason instanceof EventRejectedError, String(bad.reason));
    assert.equal(bad.reason.code, 'schema_violation');
    assert.equal(bad.reason.status, 202, 'the batch was answered 202 for the valid event');
    assert.deepEqual(bad.reason.details.map((d) => d.pointer), ['/data/count'],
      `${JSON.stringify(bad.reason.details)}\n${tail(stack.logPath)}`);
  });

  it('an unknown API key is refused with 401 and not retried', async () => {
    let requests = 0;
    const client = new IngestLayer({
      endpoint: stack.apiUrl, apiKey: 'il_not_a_key', flushIntervalMs: 0,
      fetch: (...args) => {
        requests += 1;
        return fetch(...args);
      },
    });
    const error = await client.ingestUntyped('sdk.test', { n: 0 }).catch((e) => e);
    await client.close();
    assert.ok(error instanceof EventRejectedError);
    assert.equal(error.code, 'unauthorized');
    assert.equal(error.status, 401);
    assert.equal(requests, 1);
  });
});
