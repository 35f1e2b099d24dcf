// The ingest API as the SDK uses it: `POST /v1/events/batch`, its limits, and what each
// answer means for each event in the batch. Pure functions, tested without I/O.

import type { FieldError } from './errors.js';

/** Most events in one batch request. */
export const MAX_BATCH_EVENTS = 500;
/** Largest body of one batch request. */
export const MAX_BATCH_BODY_BYTES = 5 * 1024 * 1024;
/** Largest event. The server measures the event as stored, a little larger than as sent. */
export const MAX_EVENT_BYTES = 256 * 1024;

/** The bytes `{"events":[` and `]}` add around a batch's events. */
export const BATCH_ENVELOPE_BYTES = '{"events":[]}'.length;

/** The body of a batch request holding the given serialized events. */
export function batchBody(events: readonly string[]): string {
  return `{"events":[${events.join(',')}]}`;
}

/** What one answer means for one event of the batch. */
export type Verdict =
  | { kind: 'accepted'; duplicate: boolean }
  | { kind: 'rejected'; code: string; message: string; status: number; details: FieldError[] }
  | { kind: 'retry'; code: string; message: string; status?: number };

/** The verdict for every event of a batch that got no answer at all. */
export function unanswered(count: number, code: string, message: string): Verdict[] {
  return Array.from({ length: count }, () => ({ kind: 'retry', code, message }));
}

/**
 * What an HTTP answer to a batch of `count` events means for each of them, in order.
 *
 * - A body with per-item `results` (202, a 400 where all were rejected, a 503 where all failed)
 *   decides each event on its own: `accepted`, `rejected` (with its field errors), or `failed`
 *   (retried when `retryable`). An event the results do not mention is retried.
 * - Otherwise 429 and 5xx retry the whole batch; any other status refuses it (400, 401, 413…)
 *   with the `error` body's code and details; a 2xx without results is retried, since the ids
 *   make a second attempt harmless.
 */
export function interpret(status: number, body: unknown, count: number): Verdict[] {
  const results = batchResults(body);
  if (results) {
    const byIndex = new Map(results.map((r) => [r.index, r]));
    return Array.from({ length: count }, (_, i) => itemVerdict(byIndex.get(i), status));
  }
  const error = errorBody(body);
  const code = error?.code ?? `http_${status}`;
  const message = error?.message ?? `the server answered HTTP ${status}`;
  if (status === 429 || status >= 500) {
    return Array.from({ length: count }, () => ({ kind: 'retry', code, message, status }));
  }
  if (status >= 200 && status < 300) {
    return unanswered(count, 'invalid_response',
      `HTTP ${status} without per-event results`).map((v) => ({ ...v, status }));
  }
  const details = fieldErrors(error?.details);
  return Array.from({ length: count }, () => ({ kind: 'rejected', code, message, status, details }));
}

interface ItemResult {
  index: number;
  status?: unknown;
  duplicate?: unknown;
  code?: unknown;
  errors?: unknown;
  retryable?: unknown;
  message?: unknown;
}

function itemVerdict(r: ItemResult | undefined, status: number): Verdict {
  if (r === undefined) {
    return { kind: 'retry', code: 'invalid_response', message: 'no result for this event', status };
  }
  const code = typeof r.code === 'string' ? r.code : undefined;
  const message = typeof r.message === 'string' ? r.message : undefined;
  switch (r.status) {
    case 'accepted':
      // The server answers with the id the SDK sent, scoped by the API key's source
      // (`<source>:<id>`); the SDK reports the id it sent.
      return { kind: 'accepted', duplicate: r.duplicate === true };
    case 'rejected':
      return {
        kind: 'rejected',
        code: code ?? 'rejected',
        message: message ?? 'the server rejected the event',
        status,
        details: fieldErrors(r.errors),
      };
    case 'failed':
      if (r.retryable === false) {
        return {
          kind: 'rejected',
          code: code ?? 'failed',
          message: message ?? 'the server could not take the event',
          status,
          details: [],
        };
      }
      return { kind: 'retry', code: code ?? 'unavailable', message: message ?? 'failed', status };
    default:
      return { kind: 'retry', code: 'invalid_response', message: 'unknown result status', status };
  }
}

function batchResults(body: unknown): ItemResult[] | undefined {
  if (!isObject(body) || !Array.isArray(body.results)) return undefined;
  return body.results.filter(
    (r): r is ItemResult => isObject(r) && typeof r.index === 'number',
  );
}

function errorBody(body: unknown): { code?: string; message?: string; details?: unknown } | undefined {
  if (!isObject(body) || !isObject(body.error)) return undefined;
  const { code, message, details } = body.error;
  return {
    code: typeof code === 'string' ? code : undefined,
    message: typeof message === 'string' ? message : undefined,
    details,
  };
}

/**
 * The server's field errors, with pointers made relative to the event: in a batch the server
 * points into the request (`/events/3/data/count`), which means nothing to the caller.
 */
function fieldErrors(raw: unknown): FieldError[] {
  if (!Array.isArray(raw)) return [];
  return raw.filter(isObject).map((e) => ({
    pointer: String(e.pointer ?? '').replace(/^\/events\/\d+/, ''),
    message: String(e.message ?? ''),
  }));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
