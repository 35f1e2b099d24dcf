// A real-browser end-to-end test of the destinations page: sign in with the admin token,
// connect the local Slack stand-in's workspace through its OAuth consent page, pick a channel
// for the example pipeline, send an event and see it land in that channel, posted with the
// workspace token the install issued.
//
// Runs `target/debug/ingestlayer-local dev` (build it first: `cargo build -p ingestlayer-local`)
// against a moto server (started here unless AWS_ENDPOINT_URL points at one) and drives headless
// Debian Chromium (/usr/bin/chromium, or CHROMIUM_PATH) with playwright-core. Nothing is
// downloaded. See README.md beside this file.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const ARTIFACTS = join(HERE, 'artifacts');
const BIN =
  process.env.INGESTLAYER_LOCAL_BIN ??
  join(process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target'),
    'debug', 'ingestlayer-local');
const MOTO = process.env.MOTO_SERVER ?? join(ROOT, '.tools/venv/bin/moto_server');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const PIPELINE = 'feature-usage-to-alerts';
const TEAM_ID = 'T0STANDIN';
const TEAM_NAME = 'Stand-in';
const DEFAULT_STANDIN_TOKEN = 'xoxb-local-standin';

// ---------------------------------------------------------------- processes

/** Every process group started here, killed on the way out whatever happens. */
const groups = new Set();
function killAll() {
  for (const pid of groups) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 })[signal]);
  });
}

/** Starts `cmd` in its own process group, its output appended to `logPath`. */
function start(cmd, args, { env, logPath }) {
  const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.add(child.pid);
  const log = createWriteStream(logPath);
  child.stdout.on('data', (d) => log.write(d));
  child.stderr.on('data', (d) => log.write(d));
  child.exited = new Promise((res) => child.once('exit', (code, signal) => {
    groups.delete(child.pid);
    res({ code, signal });
  }));
  child.logPath = logPath;
  return child;
}

/** SIGTERM to the whole group, SIGKILL after 5 s. */
async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(-child.pid, 'SIGTERM'); } catch { return; }
  const timer = sleep(5000, 'timeout', { ref: false }); // unref'd: must not hold the process open
  if ((await Promise.race([child.exited, timer])) === 'timeout') {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    await child.exited;
  }
}

function tail(path, lines = 40) {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function answers(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return r.ok;
  } catch {
    return false;
  }
}

/** Starts moto on a free port and waits until it answers. */
async function startMoto() {
  const port = await freePort();
  const child = start(MOTO, ['-H', '127.0.0.1', '-p', String(port)], {
    env: process.env,
    logPath: join(ARTIFACTS, 'moto.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (await answers(`${url}/moto-api/`)) return { child, url };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  await stop(child);
  throw new Error(`moto server did not answer on ${url}:\n${tail(child.logPath)}`);
}

/** Starts `ingestlayer-local dev` and waits for its banner on stdout. */
async function startLocal({ endpoint, port, standinPort, prefix, apiKey, adminToken }) {
  const env = { ...process.env };
  for (const name of ['SLACK_BOT_TOKEN', 'SLACK_API_URL', 'SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET',
    'SLACK_SIGNING_SECRET', 'PORT', 'SLACK_STANDIN_PORT', 'SCHEMAS_REQUIRED']) {
    delete env[name];
  }
  Object.assign(env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_REGION: 'us-east-1',
    INGESTLAYER_API_KEY: apiKey,
    INGESTLAYER_ADMIN_TOKEN: adminToken,
  });
  const child = start(BIN, ['dev', '--port', String(port), '--standin-port', String(standinPort),
    '--prefix', prefix], { env, logPath: join(ARTIFACTS, 'ingestlayer-local.log') });
  let out = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(
      `no "ingestlayer is running" banner within 40 s:\n${tail(child.logPath)}`)), 40_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ingestlayer is running')) {
        clearTimeout(timer);
        res();
      }
    });
    child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`ingestlayer-local exited (${code ?? signal}) before its banner:\n${tail(child.logPath)}`));
    });
  }).catch(async (e) => {
    await stop(child);
    throw e;
  });
  return child;
}

// ---------------------------------------------------------------- the test

describe('destinations page in a real browser', { timeout: 90_000 }, () => {
  const port = { api: 0, standin: 0 };
  const apiKey = `il_${randomBytes(20).toString('hex')}`;
  const adminToken = `admin-${randomBytes(16).toString('hex')}`;
  const prefix = `e2e-${randomBytes(4).toString('hex')}`;
  let moto;
  let local;
  let browser;
  let context;
  let page;
  let failed = false;
  const api = (path) => `http://127.0.0.1:${port.api}${path}`;
  const standin = (path) => `http://127.0.0.1:${port.standin}${path}`;

  /** Each step builds on the one before: after a failure the rest are skipped. */
  function step(name, fn) {
    it(name, async (t) => {
      if (failed) {
        t.skip('an earlier step failed');
        return;
      }
      try {
        await fn(t);
      } catch (e) {
        failed = true;
        if (page) {
          await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
        }
        if (local) e.message += `\n--- ingestlayer-local log (${local.logPath}) ---\n${tail(local.logPath)}`;
        throw e;
      }
    });
  }

  async function standinPost(path, body) {
    const r = await fetch(standin(path), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, `${path}: ${await r.text()}`);
  }

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    rmSync(join(ARTIFACTS, 'failure.png'), { force: true });
    assert.ok(existsSync(BIN), `${BIN} is missing: run cargo build -p ingestlayer-local`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
    let endpoint = process.env.AWS_ENDPOINT_URL;
    if (endpoint) {
      assert.ok(await answers(`${endpoint}/moto-api/`), `AWS_ENDPOINT_URL=${endpoint} does not answer`);
    } else {
      moto = await startMoto();
      endpoint = moto.url;
    }
    port.api = await freePort();
    port.standin = await freePort();
    const [launched] = await Promise.all([
      chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 }),
      startLocal({ endpoint, port: port.api, standinPort: port.standin, prefix, apiKey, adminToken })
        .then((c) => { local = c; }),
    ]).catch(async (e) => {
      failed = true;
      throw e;
    });
    browser = launched;
    context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(15_000);
    page = await context.newPage();
  }, { timeout: 60_000 });

  after(async () => {
    await browser?.close().catch(() => {});
    await stop(local);
    await stop(moto?.child);
  });

  step('the stand-in gets a public #sales and a private #secret the bot is not in', async () => {
    await standinPost('/_standin/channels', { name: '#sales', private: false, bot_member: true });
    await standinPost('/_standin/channels', { name: '#secret', private: true, bot_member: false });
  });

  step('signing in with the admin token opens the page and sets an HttpOnly, Secure session cookie', async () => {
    const first = await page.goto(api('/destinations'));
    assert.equal(first.status(), 401);
    await page.locator('input[name="token"]').fill(adminToken);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/destinations' && u.port === String(port.api)),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    assert.equal(await page.locator('h1').textContent(), 'Destinations');
    const cookies = await context.cookies(api('/'));
    const session = cookies.find((c) => c.name === 'il_session');
    assert.ok(session, `no il_session cookie stored; cookies: ${JSON.stringify(cookies.map((c) => c.name))}`);
    assert.equal(session.httpOnly, true, 'il_session is not HttpOnly');
    assert.equal(session.secure, true, 'il_session is not Secure');
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/');
    assert.ok(session.expires > Date.now() / 1000 + 3600, 'il_session expires within the hour');
  });

  step('Add to Slack goes through the stand-in consent page and back to "Slack connected"', async () => {
    await Promise.all([
      page.waitForURL((u) => u.port === String(port.standin) && u.pathname === '/oauth/v2/authorize'),
      page.locator('#add-to-slack').click(),
    ]);
    const consent = new URL(page.url());
    assert.equal(consent.searchParams.get('redirect_uri'), api('/slack/oauth/callback'));
    assert.match(await page.locator('h1').textContent(), new RegExp(`${TEAM_NAME} workspace`));
    await Promise.all([
      page.waitForURL((u) => u.port === String(port.api) && u.pathname === '/slack/oauth/callback'),
      page.getByRole('button', { name: 'Allow' }).click(),
    ]);
    assert.equal(await page.locator('h1').textContent(), 'Slack connected');
    const text = await page.locator('body').innerText();
    assert.ok(text.includes(TEAM_NAME) && text.includes(TEAM_ID), `callback page says: ${text}`);
    await Promise.all([
      page.waitForURL((u) => u.port === String(port.api) && u.pathname === '/destinations'),
      page.locator('a[href="/destinations"]').click(),
    ]);
    assert.equal(await page.locator('h1').textContent(), 'Destinations');
  });

  step('the workspace is listed and the pipeline\'s channel can be set to #sales in it', async () => {
    const row = page.locator(`tr[data-team="${TEAM_ID}"]`);
    assert.equal(await row.count(), 1, 'the workspace row is missing');
    const rowText = await row.innerText();
    assert.ok(rowText.includes(TEAM_NAME) && rowText.includes('active'), `workspace row: ${rowText}`);

    const section = page.locator(`section[data-pipeline="${PIPELINE}"]`);
    const select = section.locator('select[name="target"]');
    const values = await select.locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(values.includes(`${TEAM_ID}|#sales`), `options: ${values.join(', ')}`);
    assert.ok(!values.some((v) => v.toLowerCase().includes('secret')),
      `a private channel the bot is not in is offered: ${values.join(', ')}`);
    await select.selectOption(`${TEAM_ID}|#sales`);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/destinations' && u.searchParams.get('saved') === PIPELINE),
      section.getByRole('button', { name: 'Save' }).click(),
    ]);
    assert.equal(await page.getByRole('status').innerText(), `Saved the channel of ${PIPELINE}.`);
    assert.equal(
      await page.locator(`section[data-pipeline="${PIPELINE}"] select[name="target"]`).inputValue(),
      `${TEAM_ID}|#sales`,
    );
    await page.screenshot({ path: join(ARTIFACTS, 'destinations.png'), fullPage: true });
  });

  step('an event lands in #sales, posted with the token the install issued', async () => {
    // From here on the stand-in refuses the stack's default token (token_revoked): a message
    // that arrives was posted with another one, the workspace's.
    await standinPost('/_standin/tokens/revoke', { token: DEFAULT_STANDIN_TOKEN });
    const sent = await fetch(api('/v1/events'), {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'feature.used',
        data: { user_id: 'u_42', feature: 'csv.export', count: 1, plan: 'free' },
      }),
    });
    assert.equal(sent.status, 202, await sent.text());

    // Poll for the message; stop early when Slack refused a post for good (a wrong token).
    const terminal = new Set(['token_revoked', 'invalid_auth', 'not_in_channel', 'channel_not_found']);
    let messages = [];
    let requests = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await fetch(standin(`/_standin/messages?channel=${encodeURIComponent('#sales')}`));
      messages = await r.json();
      if (messages.length > 0) break;
      requests = await (await fetch(standin('/_standin/requests'))).json();
      if (requests.some((q) => terminal.has(q.error))) break;
      await sleep(250);
    }
    assert.ok(messages.length > 0,
      `nothing reached #sales; chat.postMessage requests so far: ${JSON.stringify(requests)}`);
    assert.equal(messages.length, 1, JSON.stringify(messages));
    const [m] = messages;
    // The stand-in's message listing may not carry the token; when it does, check it outright.
    if ('token' in m) {
      assert.ok(m.token.startsWith('xoxb-'), `token ${m.token.slice(0, 10)}…`);
      assert.notEqual(m.token, DEFAULT_STANDIN_TOKEN);
    }
    const header = (m.blocks ?? []).find((b) => b.type === 'header');
    assert.ok(header, `no header block: ${JSON.stringify(m.blocks)}`);
    assert.equal(header.text.text, 'feature.used');
    assert.ok(JSON.stringify(m.blocks).includes('u_42'));
  });

  step('without a session the page is the sign-in form (401)', async () => {
    const fresh = await browser.newContext();
    try {
      const p = await fresh.newPage();
      const r = await p.goto(api('/destinations'));
      assert.equal(r.status(), 401);
      assert.equal(await p.locator('h1').textContent(), 'Sign in');
      assert.equal(await p.locator('input[name="token"]').count(), 1);
      assert.equal(await p.locator('[data-pipeline]').count(), 0, 'pipelines shown without a session');
    } finally {
      await fresh.close();
    }
  });

  step('a wrong admin token is refused', async () => {
    const fresh = await browser.newContext();
    try {
      const p = await fresh.newPage();
      await p.goto(api('/destinations'));
      await p.locator('input[name="token"]').fill(`not-${adminToken}`);
      const [answer] = await Promise.all([
        p.waitForResponse((r) => r.url() === api('/destinations/sign-in') && r.request().method() === 'POST'),
        p.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      assert.equal(answer.status(), 401);
      await p.waitForLoadState();
      assert.equal(await p.getByRole('alert').innerText(), 'That admin token is not right.');
      const cookies = await fresh.cookies(api('/'));
      assert.ok(!cookies.some((c) => c.name === 'il_session'), 'a session cookie was set');
    } finally {
      await fresh.close();
    }
  });
});
