// Interoperability of POST /v1/webhooks/{source} with the providers' OWN signing code, over
// HTTP against the real local stack (`ingestlayer-local dev`, its Slack stand-in, moto):
//
// - Standard Webhooks: `standardwebhooks` (the reference library), `new Webhook(secret).sign(...)`
// - Stripe:            `stripe` (stripe-node), `stripe.webhooks.generateTestHeaderString(...)`
// - GitHub:            `@octokit/webhooks-methods`, `sign(secret, payload)`
//
// For each provider: a delivery signed by the library is accepted (202) and its card reaches
// the pipeline's channel with the payload's values; the same delivery three times is one event
// and one message; a tampered body, a wrong secret, an empty signature and timestamps 301 s
// off either way are refused (401 invalid_signature, with the reason); nothing refused reaches
// Slack. Every accepted delivery is also checked with the library's own verifier, and every
// tampered / wrong-secret / empty one is refused by it too, so each case is what it claims.
// See README.md beside this file.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { sign as githubSign, verify as githubVerify } from '@octokit/webhooks-methods';

import { ROOT, startStack, tail } from '../node/local-stack.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const version = (pkg) =>
  JSON.parse(readFileSync(join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version;
const example = (name) =>
  JSON.parse(readFileSync(join(ROOT, 'infra/examples/webhooks', name), 'utf8'));

/** How long after the last request a message that should not exist would have appeared. The
 * stand-in paces delivery at about 1 message/s per channel and a card arrives well within a
 * second of its 202, so 3 s leaves room for at least two more. */
const QUIET_MS = 3000;
/** How long a card may take to reach the stand-in. */
const CARD_TIMEOUT_MS = 20_000;

const tag = () => randomBytes(4).toString('hex');

const SECRETS = {
  // Standard Webhooks: whsec_ and base64 of 24–64 random bytes.
  demo: `whsec_${randomBytes(32).toString('base64')}`,
  // Stripe's endpoint secrets are whsec_ and 32 letters and digits.
  stripe: `whsec_${randomBytes(16).toString('hex')}`,
  // GitHub's are whatever the repository owner typed.
  github: randomBytes(20).toString('hex'),
};
const stripe = new Stripe('sk_test_interop_never_used_on_the_network');

/** Unix seconds, read early in a second: a request sent now is checked within the same
 * second, so a timestamp 301 s off is exactly 301 s off on the server too. */
async function earlyInASecond() {
  const ms = Date.now() % 1000;
  if (ms > 400) await sleep(1000 - ms + 20);
  return Math.floor(Date.now() / 1000);
}

/** Everything a message shows: its fallback text and blocks. */
const shown = (m) => `${m.text ?? ''}\n${JSON.stringify(m.blocks ?? [])}`;
const headerOf = (m) => (m.blocks ?? []).find((b) => b.type === 'header')?.text?.text;
/** The event a message is for: its metadata, else the card's `ingestlayer · \`<id>\`` footer. */
const eventIdOf = (m) =>
  m.metadata?.event_payload?.event_id ?? /ingestlayer · `([^`]+)`/.exec(shown(m))?.[1];

// ---------------------------------------------------------------- the providers

/**
 * Each provider: how its sender builds a delivery (`delivery()`), signs it with the
 * provider's library (`sign`), what an empty signature looks like, how to tamper with the
 * body, how the library itself verifies, and what its card must show.
 */
const PROVIDERS = [
  {
    source: 'demo',
    title: `Standard Webhooks, signed by standardwebhooks ${version('standardwebhooks')}`,
    channel: '#signups',
    event: 'user.signed_up',
    timestamps: true,
    signatureHeader: 'webhook-signature',
    otherSecret: () => `whsec_${randomBytes(32).toString('base64')}`,
    delivery() {
      const t = tag();
      const email = `sam+${t}@globex.example`;
      const body = JSON.stringify({
        ...example('demo-user-signed-up.json'),
        timestamp: new Date().toISOString(),
        data: { ...example('demo-user-signed-up.json').data, email, name: 'Zoë Ångström' },
      });
      return { id: `msg_${randomBytes(12).toString('hex')}`, body, email };
    },
    tamper: (d) => d.body.replace(d.email, 'mallory@evil.example'),
    async sign({ id, body }, secret, ts) {
      return {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': new Webhook(secret).sign(id, new Date(ts * 1000), body),
      };
    },
    emptySignature: '`v1,`',
    async unsigned(d, ts) {
      return { ...(await this.sign(d, SECRETS.demo, ts)), 'webhook-signature': 'v1,' };
    },
    async libraryVerifies(headers, body, secret) {
      try {
        new Webhook(secret).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    },
    card(m, d) {
      assert.equal(headerOf(m), 'user.signed_up');
      assert.ok(shown(m).includes(d.email), `the card shows ${d.email}:\n${shown(m)}`);
      assert.ok(shown(m).includes('Zoë Ångström'), `the card shows the UTF-8 name:\n${shown(m)}`);
    },
  },
  {
    source: 'stripe',
    title: `Stripe, signed by stripe-node ${version('stripe')}`,
    channel: '#billing',
    event: 'invoice.payment_failed',
    timestamps: true,
    signatureHeader: 'Stripe-Signature',
    otherSecret: () => `whsec_${randomBytes(16).toString('hex')}`,
    delivery() {
      const t = tag();
      const ev = example('stripe-invoice-payment-failed.json');
      const id = `evt_${randomBytes(12).toString('hex')}`;
      const email = `billing+${t}@acme.example`;
      const number = `ACME-${t.toUpperCase()}`;
      Object.assign(ev, { id, created: Math.floor(Date.now() / 1000) });
      Object.assign(ev.data.object, { customer_email: email, number, customer_name: 'Åcme Straße Inc.' });
      // Stripe sends its events pretty-printed: the signature covers these exact bytes.
      return { id, body: JSON.stringify(ev, null, 2), email, number };
    },
    tamper: (d) => d.body.replace('"amount_due": 4900', '"amount_due": 1'),
    async sign({ body }, secret, ts) {
      return {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
        'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: ts }),
      };
    },
    emptySignature: '`t=…,v1=`',
    async unsigned(d, ts) {
      return { ...(await this.sign(d, SECRETS.stripe, ts)), 'stripe-signature': `t=${ts},v1=` };
    },
    async libraryVerifies(headers, body, secret) {
      try {
        stripe.webhooks.constructEvent(body, headers['stripe-signature'], secret);
        return true;
      } catch {
        return false;
      }
    },
    card(m, d) {
      assert.equal(headerOf(m), 'Payment failed');
      assert.ok(shown(m).includes(d.email), `the card shows ${d.email}:\n${shown(m)}`);
      assert.ok(shown(m).includes(d.number), `the card shows invoice ${d.number}:\n${shown(m)}`);
    },
  },
  {
    source: 'github',
    title: `GitHub, signed by @octokit/webhooks-methods ${version('@octokit/webhooks-methods')}`,
    channel: '#deploys',
    event: 'github.workflow_run',
    timestamps: false, // GitHub signs no timestamp
    // GitHub signs neither the delivery id nor the event type: the server keys a GitHub
    // event by the SHA-256 of the signed body, so a replay under a new delivery id is a duplicate.
    eventId: (d) => `webhook:github:sha256-${createHash('sha256').update(d.body).digest('hex')}`,
    signatureHeader: 'X-Hub-Signature-256',
    otherSecret: () => randomBytes(20).toString('hex'),
    delivery() {
      const t = tag();
      const ev = example('github-workflow-run-failed.json');
      const workflow = `CI ${t}`;
      const repo = `acme/app-${t}`;
      Object.assign(ev.workflow_run, { name: workflow, display_title: 'Añadir límites de exportación' });
      Object.assign(ev.workflow, { name: workflow });
      Object.assign(ev.repository, { name: `app-${t}`, full_name: repo });
      return { id: randomUUID(), body: JSON.stringify(ev), workflow, repo };
    },
    tamper: (d) => d.body.replace(`"full_name":"${d.repo}"`, '"full_name":"evil/app"'),
    async sign({ id, body }, secret) {
      return {
        'content-type': 'application/json',
        'user-agent': 'GitHub-Hookshot/044aadd',
        'x-github-event': 'workflow_run',
        'x-github-delivery': id,
        'x-github-hook-id': '123456789',
        'x-github-hook-installation-target-type': 'repository',
        'x-github-hook-installation-target-id': '1296269',
        'x-hub-signature-256': await githubSign(secret, body),
      };
    },
    emptySignature: '`sha256=`',
    async unsigned(d, ts) {
      return { ...(await this.sign(d, SECRETS.github, ts)), 'x-hub-signature-256': 'sha256=' };
    },
    async libraryVerifies(headers, body, secret) {
      try {
        return await githubVerify(secret, body, headers['x-hub-signature-256']);
      } catch {
        return false;
      }
    },
    card(m, d) {
      assert.equal(headerOf(m), `Build failed: ${d.workflow}`);
      assert.ok(shown(m).includes(d.repo), `the card shows ${d.repo}:\n${shown(m)}`);
    },
  },
];

// ---------------------------------------------------------------- the tests

describe('POST /v1/webhooks/{source} with the providers\' own signing code', { concurrency: true, timeout: 60_000 }, () => {
  let stack;

  before(async () => {
    // A random API key and admin token; the webhook secrets are the ones the senders sign with.
    stack = await startStack({
      artifacts: join(HERE, 'artifacts'),
      prefix: `wh-${tag()}`,
      env: {
        INGESTLAYER_WEBHOOK_SECRET: SECRETS.demo,
        STRIPE_WEBHOOK_SECRET: SECRETS.stripe,
        GITHUB_WEBHOOK_SECRET: SECRETS.github,
      },
    });
  }, { timeout: 60_000 });

  after(async () => {
    await stack?.stop();
  });

  async function post(source, headers, body) {
    const r = await fetch(`${stack.apiUrl}/v1/webhooks/${source}`, { method: 'POST', headers, body });
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, text, json };
  }

  async function messages(channel) {
    const r = await fetch(`${stack.standinUrl}/_standin/messages?channel=${encodeURIComponent(channel)}`);
    assert.equal(r.status, 200, `stand-in messages of ${channel}`);
    return r.json();
  }

  async function waitForCard(channel, eventId) {
    const deadline = Date.now() + CARD_TIMEOUT_MS;
    for (;;) {
      const found = (await messages(channel)).filter((m) => eventIdOf(m) === eventId);
      if (found.length > 0) return found[0];
      if (Date.now() > deadline) {
        throw new Error(`no card for ${eventId} in ${channel} within ${CARD_TIMEOUT_MS / 1000} s`);
      }
      await sleep(200);
    }
  }

  /** A test whose failure message ends with the server's log. */
  function step(name, fn) {
    it(name, async (t) => {
      try {
        await fn(t);
      } catch (e) {
        if (stack) e.message += `\n--- ingestlayer-local log (${stack.logPath}) ---\n${tail(stack.logPath, 25)}`;
        throw e;
      }
    });
  }

  for (const p of PROVIDERS) {
    const secret = SECRETS[p.source];
    const eventId = p.eventId ?? ((d) => `webhook:${p.source}:${d.id}`);

    describe(`${p.title} → /v1/webhooks/${p.source} → ${p.channel}`, { concurrency: false }, () => {
      /** Event ids that were accepted as new: exactly these may be in the channel. */
      const accepted = new Set();
      let first;
      let lastRequestAt = 0;

      async function deliver(headers, body) {
        const r = await post(p.source, headers, body);
        lastRequestAt = Date.now();
        return r;
      }

      function assertAccepted(r, d, duplicate) {
        assert.equal(r.status, 202, r.text);
        assert.deepEqual(r.json, { id: eventId(d), status: 'accepted', duplicate, name: p.event });
      }

      step(`a delivery signed by the library is accepted (202) and its card reaches ${p.channel}`, async () => {
        const d = p.delivery();
        const headers = await p.sign(d, secret, Math.floor(Date.now() / 1000));
        assert.ok(await p.libraryVerifies(headers, d.body, secret), 'the library verifies its own delivery');
        const r = await deliver(headers, d.body);
        assertAccepted(r, d, false);
        accepted.add(eventId(d));
        const card = await waitForCard(p.channel, eventId(d));
        p.card(card, d);
        first = d;
      });

      step('the same delivery three times is one event (202 duplicate:false, then duplicate:true twice) and one message', async () => {
        assert.ok(first, 'needs the accepted delivery of the test before');
        // The first of the three was sent above and its card has arrived. The sender's
        // retries carry the same id and body, signed again at the time of the retry.
        for (let attempt = 2; attempt <= 3; attempt++) {
          const headers = await p.sign(first, secret, Math.floor(Date.now() / 1000));
          const r = await deliver(headers, first.body);
          assertAccepted(r, first, true);
        }
        // After the first card arrived: QUIET_MS more after the last redelivery, time for
        // a second card to have been posted if one had been queued.
        await sleep(QUIET_MS);
        const cards = (await messages(p.channel)).filter((m) => eventIdOf(m) === eventId(first));
        assert.equal(cards.length, 1, `one card for ${eventId(first)} in ${p.channel}, found ${cards.length}`);
      });

      if (p.source === 'demo') {
        step('key rotation: two signatures, one from an unknown secret and one valid, is accepted', async () => {
          const d = p.delivery();
          const ts = Math.floor(Date.now() / 1000);
          const unknown = await p.sign(d, p.otherSecret(), ts);
          const valid = await p.sign(d, secret, ts);
          const headers = { ...valid, 'webhook-signature': `${unknown['webhook-signature']} ${valid['webhook-signature']}` };
          assert.ok(await p.libraryVerifies(headers, d.body, secret), 'the library verifies the two-signature header');
          const r = await deliver(headers, d.body);
          assertAccepted(r, d, false);
          accepted.add(eventId(d));
          p.card(await waitForCard(p.channel, eventId(d)), d);
        });
      }

      // Each refused delivery has its own fresh id: had it been accepted, it would be a new
      // event and a new card, which the last test would find.
      const refusals = [
        {
          name: 'a tampered body (signed, then one value changed)',
          async make(d, ts) {
            const body = p.tamper(d);
            assert.notEqual(body, d.body, 'the tampering changed the body');
            return { headers: await p.sign(d, secret, ts), body };
          },
          reason: /no signature matches/,
          libraryRefuses: true,
        },
        {
          name: 'signed with a wrong secret',
          make: async (d, ts) => ({ headers: await p.sign(d, p.otherSecret(), ts), body: d.body }),
          reason: /no signature matches/,
          libraryRefuses: true,
        },
        {
          name: `an empty signature (${p.emptySignature})`,
          make: async (d, ts) => ({ headers: await p.unsigned(d, ts), body: d.body }),
          reason: new RegExp(`${p.signatureHeader} header`, 'i'),
          libraryRefuses: true,
        },
      ];
      if (p.timestamps) {
        refusals.push(
          {
            name: 'a timestamp 301 s in the past (signed by the library with it)',
            make: async (d, ts) => ({ headers: await p.sign(d, secret, ts - 301), body: d.body }),
            reason: /timestamp.*\b301 s\b.*±300 s/,
          },
          {
            name: 'a timestamp 301 s in the future (signed by the library with it)',
            make: async (d, ts) => ({ headers: await p.sign(d, secret, ts + 301), body: d.body }),
            reason: /timestamp.*\b301 s\b.*±300 s/,
          },
        );
      }
      for (const c of refusals) {
        step(`refused with 401 invalid_signature: ${c.name}`, async () => {
          const d = p.delivery();
          const ts = await earlyInASecond();
          const { headers, body } = await c.make(d, ts);
          if (c.libraryRefuses) {
            assert.equal(await p.libraryVerifies(headers, body, secret), false, 'the library refuses it too');
          }
          const r = await deliver(headers, body);
          assert.equal(r.status, 401, r.text);
          assert.equal(r.json?.error?.code, 'invalid_signature', r.text);
          assert.match(r.json.error.message, c.reason);
        });
      }

      step(`nothing refused reached ${p.channel}: it holds exactly the accepted events, once each`, async () => {
        await sleep(Math.max(0, lastRequestAt + QUIET_MS - Date.now()));
        const ids = (await messages(p.channel)).map(eventIdOf);
        assert.deepEqual(ids.sort(), [...accepted].sort());
      });
    });
  }
});
