// The local stack for the interoperability tests: a moto server (unless AWS_ENDPOINT_URL
// points at one) and `ingestlayer-local dev` with its Slack stand-in, each in its own
// process group, logs in artifacts/, killed on the way out whatever happens.
// (The same way infra/e2e/destinations.test.mjs launches them.)

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '../..');
export const ARTIFACTS = join(HERE, 'artifacts');
export const BIN =
  process.env.INGESTLAYER_LOCAL_BIN ??
  join(process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target'),
    'debug', 'ingestlayer-local');
const MOTO = process.env.MOTO_SERVER ?? join(ROOT, '.tools/venv/bin/moto_server');

/** Every process group started here. */
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

/** Starts `cmd` in its own process group, its output written to `logPath`. */
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
export async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(-child.pid, 'SIGTERM'); } catch { return; }
  const timer = sleep(5000, 'timeout', { ref: false });
  if ((await Promise.race([child.exited, timer])) === 'timeout') {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    await child.exited;
  }
}

export function tail(path, lines = 40) {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function freePort() {
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
async function startLocal({ endpoint, port, standinPort, prefix, env: extra }) {
  const env = { ...process.env };
  for (const name of ['SLACK_BOT_TOKEN', 'SLACK_API_URL', 'SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET',
    'SLACK_SIGNING_SECRET', 'PORT', 'SLACK_STANDIN_PORT', 'SCHEMAS_REQUIRED',
    'INGESTLAYER_WEBHOOK_SECRET', 'STRIPE_WEBHOOK_SECRET', 'GITHUB_WEBHOOK_SECRET']) {
    delete env[name];
  }
  Object.assign(env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_REGION: 'us-east-1',
    ...extra,
  });
  const child = start(BIN, ['dev', '--port', String(port), '--standin-port', String(standinPort),
    '--prefix', prefix], { env, logPath: join(ARTIFACTS, 'ingestlayer-local.log') });
  let out = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(
      `no "ingestlayer is running" banner within 40 s:\n${tail(child.logPath)}`)), 40_000);
    child.stdout.on('data', (d) => {
      out += d;
      // The banner ends with the webhook doors and the examples after them.
      if (out.includes('ingestlayer is running') && out.includes('/v1/webhooks/github')) {
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

/**
 * The whole stack. `env` is added to ingestlayer-local's environment (API key, admin token,
 * webhook secrets). Returns URLs and a `stop()`.
 */
export async function startStack({ prefix, env }) {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run cargo build -p ingestlayer-local`);
  }
  let moto;
  let endpoint = process.env.AWS_ENDPOINT_URL;
  if (endpoint) {
    if (!(await answers(`${endpoint}/moto-api/`))) {
      throw new Error(`AWS_ENDPOINT_URL=${endpoint} does not answer`);
    }
  } else {
    moto = await startMoto();
    endpoint = moto.url;
  }
  const port = await freePort();
  const standinPort = await freePort();
  let local;
  try {
    local = await startLocal({ endpoint, port, standinPort, prefix, env });
  } catch (e) {
    await stop(moto?.child);
    throw e;
  }
  return {
    api: `http://127.0.0.1:${port}`,
    standin: `http://127.0.0.1:${standinPort}`,
    logPath: local.logPath,
    async stop() {
      await stop(local);
      await stop(moto?.child);
    },
  };
}
