/** One thing wrong with an event, located by a JSON pointer into the event (`/data/count`). */
export interface FieldError {
  pointer: string;
  message: string;
}

/** Which event an error is about: its name and the id the SDK sent it with. */
export interface EventRef {
  name: string;
  id: string;
}

/**
 * Why an event was not accepted. Every event promise that rejects, and every error passed to
 * `onError`, is one of these (usually one of the subclasses below).
 */
export class IngestError extends Error {
  /**
   * The server's code (`schema_violation`, `invalid_event`, `unauthorized`, `event_too_large`,
   * `unavailable`, …) or the SDK's own: `network_error`, `timeout`, `invalid_response`,
   * `queue_full`, `client_closed`, `internal`.
   */
  readonly code: string;
  /** The HTTP status of the answer that decided it, when there was one. */
  readonly status: number | undefined;
  /** The event's name. */
  readonly eventName: string;
  /** The event's id: re-sending the event with this id can never store it twice. */
  readonly eventId: string;

  constructor(
    event: EventRef,
    code: string,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(`${event.name} event ${event.id}: ${message}`, { cause: options.cause });
    this.name = 'IngestError';
    this.code = code;
    this.status = options.status;
    this.eventName = event.name;
    this.eventId = event.id;
  }
}

/**
 * The event was refused and sending it again unchanged will not help: it does not match its
 * schema (400), the API key is unknown or revoked (401), it is too large (413), … Not retried.
 */
export class EventRejectedError extends IngestError {
  /** Every failing field with its pointer into the event, as the server reported them. */
  readonly details: FieldError[];

  constructor(
    event: EventRef,
    code: string,
    message: string,
    options: { status?: number; details?: FieldError[] } = {},
  ) {
    const details = options.details ?? [];
    const listed = details.map((d) => `${d.pointer || '/'}: ${d.message}`).join('; ');
    super(event, code, listed ? `${message} (${listed})` : message, { status: options.status });
    this.name = 'EventRejectedError';
    this.details = details;
  }
}

/**
 * Every attempt failed transiently (429, 5xx, a network error or timeout) until `maxRetries`
 * ran out. The server may or may not hold the event; re-sending it later with the same
 * `eventId` is safe either way.
 */
export class RetriesExhaustedError extends IngestError {
  /** How many times the event was sent. */
  readonly attempts: number;

  constructor(
    event: EventRef,
    code: string,
    message: string,
    options: { status?: number; attempts: number; cause?: unknown },
  ) {
    super(event, code, `gave up after ${options.attempts} attempts: ${message}`, options);
    this.name = 'RetriesExhaustedError';
    this.attempts = options.attempts;
  }
}

/** The client cannot be built: an option or environment variable is missing or invalid. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
