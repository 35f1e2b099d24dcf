// The local stack for Node.js tests: a moto server (unless AWS_ENDPOINT_URL points at a running
// one) and `ingestlayer-local dev` with its Slack stand-in, on free ports, each in its own
// process group, their output in log files, all killed on the way out whatever happens (normal
// exit, a failed test, SIGINT/SIGTERM/SIGHUP). Plain ESM on Node.js built-ins only (Node ≥ 20),
// imported by relative path from infra/e2e, infra/webhooks and sdk/typescript/test.
//
//   import { startStack, tail } from '../node/local-stack.mjs';
//
//   const stack = await startStack({ artifacts: join(HERE, 'artifacts'), prefix: 'e2e-1a2b3c4d' });
//   // stack.apiUrl       http://127.0.0.1:<port>, the ingest API (and the destinations page)
//   // stack.standinUrl   http://127.0.0.1:<port>, the Slack stand-in (/_standin/messages, …)
//   // stack.awsEndpoint  the moto server's URL (for scanTable)
//   // stack.prefix, stack.eventsTable (`${prefix}-events`), stack.apiKey, stack.adminToken
//   // stack.logPath      artifacts/ingestlayer-local.log (moto's goes to artifacts/moto.log)
//   await stack.stop();   // SIGTERM to each process group, SIGKILL after 5 s
//
// startStack({ artifacts, prefix, apiKey, adminToken, env }):
//   artifacts   the directory for the logs, created if missing (required; one per suite)
//   prefix      the resource prefix (default `stack-<random>`): a random one per run lets
//               several stacks share one moto server
//   apiKey      INGESTLAYER_API_KEY (default `il_<random>`)
//   adminToken  INGESTLAYER_ADMIN_TOKEN (default `admin-<random>`)
//   env         more environment for ingestlayer-local (webhook secrets, …), applied last
// ingestlayer-local gets the test runner's environment without the Slack, port, schema and
// webhook-secret variables (so it always uses its stand-in, and `env` says the rest), with
// moto's endpoint and dummy credentials in us-east-1. It is ready once its banner is printed
// in full. startStack throws, with the log's tail, when the binary is missing, the
// AWS_ENDPOINT_URL given does not answer, or a process does not come up.
//
// Also: tail(path, lines = 40), the end of a log for failure messages; freePort(), a free TCP
// port on 127.0.0.1; scanTable(endpoint, table), every item of a DynamoDB table in moto with
// attributes flattened to their values; ROOT, the repository.
//
// Overrides (read when startStack runs): AWS_ENDPOINT_URL (a running moto server to use
// instead of starting one), INGESTLAYER_LOCAL_BIN (the binary; else debug/ingestlayer-local in
// the target directory `cargo metadata` names, so CARGO_TARGET_DIR and .cargo/config.toml are
// honoured as cargo honours them), MOTO_SERVER (else .tools/venv/bin/python infra/emulator/moto_server.py;
// `bash infra/tools.sh dev` installs it).

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const REGION = 'us-east-1';

/** Variables of the caller's environment that ingestlayer-local must not inherit. */
const SCRUBBED = ['SLACK_BOT_TOKEN', 'SLACK_API_URL', 'SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET',
  'SLACK_SIGNING_SECRET', 'PORT', 'SLACK_STANDIN_PORT', 'SCHEMAS_REQUIRED',
  'INGESTLAYER_WEBHOOK_SECRET', 'STRIPE_WEBHOOK_SECRET', 'GITHUB_WEBHOOK_SECRET'];

/** The workspace's target directory, as cargo resolves it from the repository root. */
function cargoTargetDir() {
  const metadata = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  return JSON.parse(metadata).target_directory;
}
const localBin = () =>
  process.env.INGESTLAYER_LOCAL_BIN ?? join(cargoTargetDir(), 'debug', 'ingestlayer-local');
// moto's server through infra/emulator/moto_server.py (SQS FIFO group order kept as SQS keeps it).
const motoServer = () =>
  process.env.MOTO_SERVER
    ? [process.env.MOTO_SERVER, []]
    : [join(ROOT, '.tools/venv/bin/python'), [join(ROOT, 'infra/emulator/moto_server.py')]];

// ---------------------------------------------------------------- processes

/** Every process group started here and still running, killed on the way out. */
const groups = new Set();
let guarded = false;
function killAll() {
  for (const pid of groups) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
/** Installed with the first process, so importing this module for tail() changes nothing. */
function guard() {
  if (guarded) return;
  guarded = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      killAll();
      process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 })[signal]);
    });
  }
}

/** Starts `cmd` in its own process group, its output written to `logPath`. */
function start(cmd, args, { env, logPath }) {
  guard();
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

/** The last `lines` lines of a log, for failure messages. */
export function tail(path, lines = 40) {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
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
async function startMoto(artifacts) {
  const port = await freePort();
  const [moto, first] = motoServer();
  const child = start(moto, [...first, '-H', '127.0.0.1', '-p', String(port)], {
    env: process.env,
    logPath: join(artifacts, 'moto.log'),
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

/** Starts `ingestlayer-local dev` and waits until its banner is printed in full. */
async function startLocal({ artifacts, endpoint, port, standinPort, prefix, env: extra }) {
  const env = { ...process.env };
  for (const name of SCRUBBED) delete env[name];
  Object.assign(env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_DEFAULT_REGION: REGION,
    AWS_REGION: REGION,
    ...extra,
  });
  const child = start(localBin(), ['dev', '--port', String(port), '--standin-port', String(standinPort),
    '--prefix', prefix], { env, logPath: join(artifacts, 'ingestlayer-local.log') });
  let out = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(
      `no "ingestlayer is running" banner within 40 s:\n${tail(child.logPath)}`)), 40_000);
    child.stdout.on('data', (d) => {
      out += d;
      // The banner lists the API, the stand-in, the pipeline and the webhook doors, then "Try:".
      const banner = out.indexOf('ingestlayer is running');
      if (banner >= 0 && out.includes('\nTry:', banner)) {
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

// ---------------------------------------------------------------- the stack

/** Starts moto (unless AWS_ENDPOINT_URL answers) and `ingestlayer-local dev`; see the top. */
export async function startStack({
  artifacts,
  prefix = `stack-${randomBytes(4).toString('hex')}`,
  apiKey = `il_${randomBytes(20).toString('hex')}`,
  adminToken = `admin-${randomBytes(16).toString('hex')}`,
  env = {},
} = {}) {
  if (!artifacts) throw new Error('startStack: `artifacts` (a directory for the logs) is required');
  mkdirSync(artifacts, { recursive: true });
  const bin = localBin();
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run cargo build -p ingestlayer-local`);
  }
  let moto;
  let endpoint = process.env.AWS_ENDPOINT_URL;
  if (endpoint) {
    if (!(await answers(`${endpoint}/moto-api/`))) {
      throw new Error(`AWS_ENDPOINT_URL=${endpoint} does not answer`);
    }
  } else {
    moto = await startMoto(artifacts);
    endpoint = moto.url;
  }
  const port = await freePort();
  const standinPort = await freePort();
  let local;
  try {
    local = await startLocal({
      artifacts, endpoint, port, standinPort, prefix,
      env: { INGESTLAYER_API_KEY: apiKey, INGESTLAYER_ADMIN_TOKEN: adminToken, ...env },
    });
  } catch (e) {
    await stop(moto?.child);
    throw e;
  }
  return {
    apiUrl: `http://127.0.0.1:${port}`,
    standinUrl: `http://127.0.0.1:${standinPort}`,
    awsEndpoint: endpoint,
    prefix,
    eventsTable: `${prefix}-events`,
    apiKey,
    adminToken,
    logPath: local.logPath,
    async stop() {
      await stop(local);
      await stop(moto?.child);
    },
  };
}

// ---------------------------------------------------------------- moto

/**
 * Every item of a DynamoDB table in moto at `endpoint`, through DynamoDB's JSON API over HTTP
 * (moto does not check the signature), with attributes flattened to their values.
 */
export async function scanTable(endpoint, table) {
  const items = [];
  let startKey;
  do {
    const r = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.Scan',
        authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${REGION}/dynamodb/aws4_request, ` +
          'SignedHeaders=host, Signature=x',
      },
      body: JSON.stringify({ TableName: table, ...(startKey ? { ExclusiveStartKey: startKey } : {}) }),
    });
    const page = await r.json();
    if (!r.ok) throw new Error(`Scan ${table}: HTTP ${r.status} ${JSON.stringify(page)}`);
    for (const item of page.Items) {
      items.push(Object.fromEntries(Object.entries(item).map(([k, v]) => [k, Object.values(v)[0]])));
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}
