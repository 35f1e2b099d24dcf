// A scripted stand-in for the ingest API over real HTTP: records every request and answers
// each with what the test's `answer` function returns.

import { createServer } from 'node:http';

/**
 * The answer the real API gives when it accepts every event of a batch.
 * @param {{events: {id: string}[]}} body
 */
export function acceptAll(body, { duplicate = false } = {}) {
  const results = body.events.map((e, index) => ({ index, status: 'accepted', id: e.id, duplicate }));
  return { status: 202, body: { accepted: results.length, rejected: 0, failed: 0, results } };
}

/**
 * Starts the server on a free port of 127.0.0.1.
 *
 * `answer(request, n)` gets the parsed request (`{method, url, headers, body, ids, at}`) and
 * its 0-based number, and returns `{status, headers?, body?}`, or `'drop'` to close the
 * connection without an answer, or `{delayMs, ...}` to answer late. Default: accept all.
 */
export async function startFakeApi(answer = (req) => acceptAll(req.body)) {
  /** Every request received, in order. */
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const request = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        bytes: Buffer.byteLength(raw),
        body,
        ids: body?.events?.map((e) => e.id) ?? [],
        at: performance.now(),
      };
      const n = requests.push(request) - 1;
      const reply = await answer(request, n);
      if (reply === 'drop') {
        req.socket.destroy();
        return;
      }
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs).unref());
      if (res.destroyed) return;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}
