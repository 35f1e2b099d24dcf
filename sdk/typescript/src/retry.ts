// The retry schedule: exponential backoff with full jitter, unless the server said when
// (Retry-After). Pure functions, tested without waiting.

/** The longest Retry-After honoured; a longer one waits this long. */
export const RETRY_AFTER_CAP_MS = 60_000;

export interface Backoff {
  /** The first retry waits up to this long; each further one up to twice as long. */
  baseDelayMs: number;
  /** No backoff wait is longer than this. */
  maxDelayMs: number;
}

/**
 * How long to wait before retry number `retry` (1 for the first): the server's Retry-After
 * when it sent one (capped at {@link RETRY_AFTER_CAP_MS}), otherwise a random time between 0
 * and `min(maxDelayMs, baseDelayMs * 2^(retry-1))` ("full jitter", so that many clients
 * that failed together do not retry together).
 */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  backoff: Backoff,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, RETRY_AFTER_CAP_MS);
  const ceiling = Math.min(backoff.maxDelayMs, backoff.baseDelayMs * 2 ** (retry - 1));
  return Math.floor(random() * ceiling);
}

/**
 * A Retry-After header in milliseconds: delay-seconds (`"2"`, `"1.5"`) or an HTTP date
 * (relative to `now`). Undefined when absent or unreadable; never negative.
 */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  // HTTP dates start with the day's name (`Fri, 27 Nov 2026 09:30:30 GMT`); Date.parse alone
  // would also take `-3` as a year.
  if (!/^[A-Za-z]{3}/.test(value)) return undefined;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Resolves after `ms`. The timer keeps the process alive: events still wait to be sent. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
