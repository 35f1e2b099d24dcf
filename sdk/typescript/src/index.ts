// @ingestlayer/sdk: send product events to ingestlayer.
//
//   import { ingest } from '@ingestlayer/sdk';
//   await ingest('feature.used', { user_id, feature, count, plan });
//
// The module-level functions use one client created on first use from the environment
// (INGESTLAYER_API_URL, INGESTLAYER_API_KEY); `new IngestLayer(options)` makes others.

import { IngestLayer, type EventName, type IngestOptions, type IngestResult } from './client.js';
import type { EventMap } from './events.gen.js';

export {
  IngestLayer,
  type EventName,
  type IngestLayerOptions,
  type IngestOptions,
  type IngestResult,
} from './client.js';
export {
  ConfigError,
  EventRejectedError,
  IngestError,
  RetriesExhaustedError,
  type EventRef,
  type FieldError,
} from './errors.js';
export * from './events.gen.js';

let defaultClient: IngestLayer | undefined;

/** The client behind `ingest`, created from the environment on first use. */
export function getDefaultClient(): IngestLayer {
  defaultClient ??= new IngestLayer();
  return defaultClient;
}

/**
 * Sends an event that has a schema with the default client; see {@link IngestLayer.ingest}.
 * @throws {ConfigError} on first use, when INGESTLAYER_API_URL or INGESTLAYER_API_KEY is unset.
 */
export function ingest<N extends EventName>(
  name: N,
  data: EventMap[N],
  options?: IngestOptions,
): Promise<IngestResult> {
  return getDefaultClient().ingest(name, data, options);
}

/** Sends an event that has no schema with the default client; see {@link IngestLayer.ingestUntyped}. */
export function ingestUntyped<N extends string>(
  name: N & (N extends EventName ? never : unknown),
  data: Record<string, unknown>,
  options?: IngestOptions,
): Promise<IngestResult> {
  return getDefaultClient().ingestUntyped(name, data, options);
}

/** Sends what the default client holds and waits until it is settled (e.g. before a Lambda returns). */
export async function flush(): Promise<void> {
  await defaultClient?.flush();
}

/** Flushes and closes the default client; the next `ingest` creates a new one. */
export async function close(): Promise<void> {
  const client = defaultClient;
  defaultClient = undefined;
  await client?.close();
}
