import { randomUUID } from 'node:crypto';

import {
  ConfigError,
  EventRejectedError,
  IngestError,
  RetriesExhaustedError,
  type EventRef,
} from './errors.js';
import type { EventMap } from './events.gen.js';
import { pending, type Pending } from './receipt.js';
import { parseRetryAfter, retryDelay, sleep, type Backoff } from './retry.js';
import {
  BATCH_ENVELOPE_BYTES,
  MAX_BATCH_BODY_BYTES,
  MAX_BATCH_EVENTS,
  MAX_EVENT_BYTES,
  batchBody,
  interpret,
  unanswered,
  type Verdict,
} from './wire.js';

/** The name of an event that has a schema (a key of the generated {@link EventMap}). */
export type EventName = keyof EventMap & string;

/** Per-event options. */
export interface IngestOptions {
  /**
   * The event's id; the SDK generates a UUID when absent. The server keeps an id for 24 hours:
   * an event sent again with the same id is answered `duplicate: true` and not processed twice.
   */
  id?: string;
  /** When it happened (sent as RFC 3339). The server records when it was received anyway. */
  time?: Date | string;
}

/** What the server answered for an accepted event. */
export interface IngestResult {
  /** The event's id. */
  id: string;
  /**
   * True when the server already held this id (a retry after a lost answer, or an id sent
   * twice): the event was accepted once and is not processed again.
   */
  duplicate: boolean;
}

export interface IngestLayerOptions {
  /** Base URL of the ingest API. Default: `INGESTLAYER_API_URL`, else `INGESTLAYER_ENDPOINT`. */
  endpoint?: string;
  /** API key (`Authorization: Bearer`). Default: `INGESTLAYER_API_KEY`. */
  apiKey?: string;
  /** Events per batch request, 1–500. A full batch is sent at once. Default 100. */
  batchSize?: number;
  /**
   * The longest an event waits for its batch to fill before it is sent. Default 1000 ms;
   * 0 sends the events of the current tick together.
   */
  flushIntervalMs?: number;
  /** Retries after the first attempt, for 429, 5xx, network errors and timeouts. Default 5. */
  maxRetries?: number;
  /** Backoff before the first retry is random up to this, doubling each retry. Default 200 ms. */
  retryBaseDelayMs?: number;
  /** No backoff is longer than this (a server's Retry-After is honoured up to 60 s). Default 20 s. */
  retryMaxDelayMs?: number;
  /** A request with no answer after this is aborted and retried. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Most events waiting or in flight; beyond it `ingest` rejects with `queue_full`. Default 10 000. */
  maxQueueSize?: number;
  /**
   * Gets every error nobody was awaiting when it happened (fire-and-forget `ingest` calls).
   * Default: one `console.error` line with the event's name, id and error code (never the
   * payload nor the key).
   */
  onError?: (error: IngestError) => void;
  /** The fetch to use. Default: the global one. */
  fetch?: typeof globalThis.fetch;
}

const DEFAULTS = {
  batchSize: 100,
  flushIntervalMs: 1000,
  maxRetries: 5,
  retryBaseDelayMs: 200,
  retryMaxDelayMs: 20_000,
  requestTimeoutMs: 10_000,
  maxQueueSize: 10_000,
} as const;

/** Batch requests in flight at once; further full batches wait in the queue. */
const MAX_CONCURRENT_BATCHES = 4;

/** An event from `ingest` until its promise settles. */
interface QueuedEvent extends EventRef {
  /** Order of arrival, for flush(). */
  seq: number;
  /** The event as sent, serialized once when it arrived. */
  json: string;
  bytes: number;
  enqueuedAt: number;
  outcome: Pending<IngestResult>;
  /** Resolves when the event's promise settles, whichever way. */
  done: Promise<void>;
  markDone(): void;
}

/**
 * A client of the ingest API. Events are queued, sent in batches (`POST /v1/events/batch`)
 * when `batchSize` are waiting or the oldest has waited `flushIntervalMs`, and retried with
 * the same ids until accepted, refused, or out of retries. Each `ingest` promise settles with
 * its own event's outcome.
 */
export class IngestLayer {
  readonly #url: URL;
  readonly #apiKey: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxRetries: number;
  readonly #backoff: Backoff;
  readonly #requestTimeoutMs: number;
  readonly #maxQueueSize: number;
  readonly #onError: (error: IngestError) => void;

  /** Events not yet sent, oldest first. */
  #queue: QueuedEvent[] = [];
  /** Events whose promise has not settled: queued, in flight, or waiting to retry. */
  readonly #unsettled = new Set<QueuedEvent>();
  #inFlight = 0;
  #seq = 0;
  /** Events up to this `seq` are due: they waited `flushIntervalMs`, or flush() came after them. */
  #dueThrough = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When #timer fires (a `now()` value). */
  #timerAt: number | undefined;
  #closed = false;

  /** @throws {ConfigError} when the endpoint or key is missing or an option is out of range. */
  constructor(options: IngestLayerOptions = {}) {
    const env = globalThis.process?.env ?? {};
    const endpoint = options.endpoint ?? env.INGESTLAYER_API_URL ?? env.INGESTLAYER_ENDPOINT;
    if (!endpoint) {
      throw new ConfigError('no endpoint: pass `endpoint` or set INGESTLAYER_API_URL');
    }
    this.#url = batchUrl(endpoint);
    const apiKey = options.apiKey ?? env.INGESTLAYER_API_KEY;
    if (!apiKey) {
      throw new ConfigError('no API key: pass `apiKey` or set INGESTLAYER_API_KEY');
    }
    this.#apiKey = apiKey;
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== 'function') {
      throw new ConfigError('no global fetch (Node.js 18 or later has one): pass `fetch`');
    }
    this.#fetch = fetchFn;
    this.#batchSize = integer('batchSize', options.batchSize ?? DEFAULTS.batchSize, 1, MAX_BATCH_EVENTS);
    this.#flushIntervalMs = integer('flushIntervalMs', options.flushIntervalMs ?? DEFAULTS.flushIntervalMs, 0);
    this.#maxRetries = integer('maxRetries', options.maxRetries ?? DEFAULTS.maxRetries, 0);
    this.#backoff = {
      baseDelayMs: integer('retryBaseDelayMs', options.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs, 0),
      maxDelayMs: integer('retryMaxDelayMs', options.retryMaxDelayMs ?? DEFAULTS.retryMaxDelayMs, 0),
    };
    this.#requestTimeoutMs = integer('requestTimeoutMs', options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, 1);
    this.#maxQueueSize = integer('maxQueueSize', options.maxQueueSize ?? DEFAULTS.maxQueueSize, 1);
    this.#onError = options.onError ?? logError;
  }

  /**
   * Queues an event that has a schema; `data` is type-checked against it. Resolves once the
   * server accepted the event; rejects with {@link EventRejectedError} when it refused it, or
   * {@link RetriesExhaustedError} when it could not be reached in `maxRetries` retries.
   * An error nobody is awaiting when it happens also goes to `onError` (and never becomes an
   * unhandled rejection).
   */
  ingest<N extends EventName>(name: N, data: EventMap[N], options?: IngestOptions): Promise<IngestResult> {
    return this.#enqueue(name, data, options);
  }

  /**
   * Queues an event that has no schema (the server accepts any JSON object for those unless
   * it is deployed with `SchemasRequired=true`). Names that have a schema are refused at
   * compile time: send those with {@link IngestLayer.ingest}.
   */
  ingestUntyped<N extends string>(
    name: N & (N extends EventName ? never : unknown),
    data: Record<string, unknown>,
    options?: IngestOptions,
  ): Promise<IngestResult> {
    return this.#enqueue(name, data, options);
  }

  /** Sends every queued event now and resolves when all events ingested so far have settled. */
  async flush(): Promise<void> {
    const waiting = [...this.#unsettled];
    this.#dueThrough = this.#seq;
    this.#pump();
    await Promise.all(waiting.map((e) => e.done));
  }

  /** Refuses further events (`client_closed`) and flushes the ones it holds. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #enqueue(name: string, data: unknown, options: IngestOptions = {}): Promise<IngestResult> {
    const id = options.id ?? newEventId();
    let markDone!: () => void;
    const done = new Promise<void>((resolve) => {
      markDone = resolve;
    });
    const event: QueuedEvent = {
      name, id, seq: ++this.#seq, json: '', bytes: 0, enqueuedAt: now(),
      outcome: pending<IngestResult>(), done, markDone,
    };
    this.#unsettled.add(event);
    const refused = this.#admit(event, data, options.time);
    if (refused) {
      // After the caller's `await` has had its chance to subscribe.
      setTimeout(() => this.#fail(event, refused), 0);
    } else {
      this.#queue.push(event);
      this.#pump(false);
    }
    return event.outcome.receipt;
  }

  /** Serializes the event; the reason it cannot be queued, if any. */
  #admit(event: QueuedEvent, data: unknown, time: Date | string | undefined): IngestError | undefined {
    if (this.#closed) {
      return new IngestError(event, 'client_closed', 'the client is closed');
    }
    if (this.#unsettled.size > this.#maxQueueSize) {
      return new IngestError(event, 'queue_full',
        `${this.#maxQueueSize} events are already waiting; the ingest API is not keeping up`);
    }
    try {
      event.json = JSON.stringify({
        name: event.name,
        id: event.id,
        ...(time === undefined ? {} : { time: time instanceof Date ? time.toISOString() : time }),
        data,
      });
    } catch (cause) {
      return new EventRejectedError(event, 'invalid_event', `cannot be serialized as JSON: ${String(cause)}`);
    }
    event.bytes = utf8Length(event.json);
    if (event.bytes > MAX_EVENT_BYTES) {
      return new EventRejectedError(event, 'event_too_large',
        `the event is ${event.bytes} bytes; the limit is ${MAX_EVENT_BYTES}`);
    }
    return undefined;
  }

  /**
   * Sends every batch that is due, as far as the concurrency allows, and times the next.
   * `expire` marks the events that have waited `flushIntervalMs` due first; `ingest` leaves it
   * to the timer, so that even with `flushIntervalMs: 0` the events of one tick go together.
   */
  #pump(expire = true): void {
    if (expire) this.#markExpired();
    while (this.#inFlight < MAX_CONCURRENT_BATCHES && this.#isDue()) {
      const batch = this.#takeBatch();
      this.#inFlight += 1;
      this.#deliver(batch)
        .catch((cause: unknown) => {
          for (const event of batch) {
            if (this.#unsettled.has(event)) {
              this.#fail(event, new IngestError(event, 'internal', 'the SDK failed', { cause }));
            }
          }
        })
        .finally(() => {
          this.#inFlight -= 1;
          this.#pump();
        });
    }
    // The timer wakes up when the oldest queued event falls due. When all slots are busy,
    // the next batch to finish pumps instead.
    const head = this.#queue[0];
    const at = head !== undefined && this.#inFlight < MAX_CONCURRENT_BATCHES
      ? head.enqueuedAt + this.#flushIntervalMs
      : undefined;
    if (at === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = at === undefined ? undefined : setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = undefined;
      this.#pump();
    }, Math.max(0, Math.ceil(at - now())));
  }

  /** Marks due the queued events that have waited `flushIntervalMs` (the queue is in order). */
  #markExpired(): void {
    const deadline = now() - this.#flushIntervalMs;
    for (const event of this.#queue) {
      if (event.enqueuedAt > deadline) break;
      this.#dueThrough = Math.max(this.#dueThrough, event.seq);
    }
  }

  #isDue(): boolean {
    const head = this.#queue[0];
    return head !== undefined &&
      (this.#queue.length >= this.#batchSize || head.seq <= this.#dueThrough || this.#closed);
  }

  /**
   * Takes the next batch off the queue, oldest first, within the size and body limits. An id
   * already in the batch waits for the next one: the server refuses one id twice in a batch.
   */
  #takeBatch(): QueuedEvent[] {
    const batch: QueuedEvent[] = [];
    const rest: QueuedEvent[] = [];
    const ids = new Set<string>();
    let bytes = BATCH_ENVELOPE_BYTES;
    let full = false;
    for (const event of this.#queue) {
      if (!full && (batch.length === this.#batchSize || bytes + event.bytes + 1 > MAX_BATCH_BODY_BYTES)) {
        full = true;
      }
      if (full || ids.has(event.id)) {
        rest.push(event);
        continue;
      }
      batch.push(event);
      ids.add(event.id);
      bytes += event.bytes + 1;
    }
    this.#queue = rest;
    return batch;
  }

  /**
   * Sends a batch until every event in it is settled: accepted and rejected events settle at
   * once; the ones to retry (all of them after a 429, 5xx or network error; only the failed
   * ones after a partial answer) are sent again, alone, after the backoff.
   */
  async #deliver(batch: QueuedEvent[]): Promise<void> {
    let remaining = batch;
    for (let attempt = 1; ; attempt += 1) {
      const { verdicts, retryAfterMs } = await this.#send(remaining);
      const again: QueuedEvent[] = [];
      remaining.forEach((event, i) => {
        const verdict = verdicts[i] as Verdict;
        switch (verdict.kind) {
          case 'accepted':
            this.#settle(event);
            event.outcome.resolve({ id: event.id, duplicate: verdict.duplicate });
            break;
          case 'rejected':
            this.#fail(event, new EventRejectedError(event, verdict.code, verdict.message, verdict));
            break;
          case 'retry':
            if (attempt > this.#maxRetries) {
              this.#fail(event, new RetriesExhaustedError(event, verdict.code, verdict.message,
                { status: verdict.status, attempts: attempt }));
            } else {
              again.push(event);
            }
            break;
        }
      });
      if (again.length === 0) return;
      await sleep(retryDelay(attempt, retryAfterMs, this.#backoff));
      remaining = again;
    }
  }

  /** One attempt at a batch: what the answer (or its absence) means for each event. */
  async #send(events: QueuedEvent[]): Promise<{ verdicts: Verdict[]; retryAfterMs?: number }> {
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(this.#url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.#apiKey}`,
          'content-type': 'application/json',
        },
        body: batchBody(events.map((e) => e.json)),
        signal: AbortSignal.timeout(this.#requestTimeoutMs),
      });
      text = await response.text();
    } catch (cause) {
      const timedOut = cause instanceof Error && cause.name === 'TimeoutError';
      return {
        verdicts: timedOut
          ? unanswered(events.length, 'timeout', `no answer within ${this.#requestTimeoutMs} ms`)
          : unanswered(events.length, 'network_error', networkMessage(cause)),
      };
    }
    return {
      verdicts: interpret(response.status, parseJson(text), events.length),
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
    };
  }

  #settle(event: QueuedEvent): void {
    this.#unsettled.delete(event);
    event.markDone();
  }

  /** Rejects the event's promise; the error goes to onError too when nobody awaits it. */
  #fail(event: QueuedEvent, error: IngestError): void {
    this.#settle(event);
    if (!event.outcome.receipt.observed) {
      try {
        this.#onError(error);
      } catch (handlerError) {
        console.error('ingestlayer: the onError handler threw:', handlerError);
      }
    }
    event.outcome.reject(error);
  }
}

/** The default onError: one line naming the event and the failure, never its data. */
function logError(error: IngestError): void {
  const fields = error instanceof EventRejectedError && error.details.length > 0
    ? ` at ${error.details.map((d) => d.pointer || '/').join(', ')}`
    : '';
  const attempts = error instanceof RetriesExhaustedError ? ` after ${error.attempts} attempts` : '';
  console.error(`ingestlayer: ${error.eventName} event ${error.eventId} was not accepted: ` +
    `${error.code}${fields}${attempts}`);
}

/** The URL of `POST /v1/events/batch` under `endpoint` (which may carry a path, e.g. a stage). */
function batchUrl(endpoint: string): URL {
  let base: URL;
  try {
    base = new URL(endpoint.endsWith('/') ? endpoint : `${endpoint}/`);
  } catch {
    throw new ConfigError(`the endpoint ${JSON.stringify(endpoint)} is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw new ConfigError(`the endpoint must be an http(s) URL, not ${base.protocol}`);
  }
  return new URL('v1/events/batch', base);
}

function integer(option: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${option} must be an integer from ${min} to ${max}, not ${value}`);
  }
  return value;
}

/**
 * A fresh event id, generated before the first attempt so every retry carries it.
 * Node.js 18 has `globalThis.crypto` only behind a flag, hence node:crypto as the fallback.
 */
function newEventId(): string {
  const webCrypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return webCrypto?.randomUUID?.() ?? randomUUID();
}

function networkMessage(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  // fetch reports "fetch failed" and puts the reason (ECONNREFUSED, ECONNRESET…) in `cause`.
  const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : '';
  return `${cause.message}${inner}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const encoder = new TextEncoder();
function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

function now(): number {
  return performance.now();
}
