// Must compile (`tsc -p test/types`). The correct calls compile, and each line under a
// `@ts-expect-error` must fail to, or tsc reports the directive as unused: payload types that
// became `any` fail this file. invalid.ts holds the same mistakes without the directives.

import {
  IngestLayer,
  ingest,
  ingestUntyped,
  type EventMap,
  type EventName,
  type FeatureUsed,
  type IngestResult,
} from '@ingestlayer/sdk';

declare const user_id: string;
declare const feature: string;
declare const count: number;
declare const plan: string;

// The product's example.
const result: IngestResult = await ingest('feature.used', { user_id, feature, count, plan });
const id: string = result.id;
const duplicate: boolean = result.duplicate;

// A client of one's own, with per-event options.
const client = new IngestLayer({ endpoint: 'http://127.0.0.1:3000', apiKey: 'il_x', batchSize: 50 });
await client.ingest('feature.used', { user_id, feature, count: 3, plan: 'pro' },
  { id: 'order-42', time: new Date() });

// Events without a schema go through ingestUntyped, by literal or computed name.
await ingestUntyped('sdk.test', { anything: [1, 2, 3] });
declare const dynamicName: string;
await client.ingestUntyped(dynamicName, { ok: true });

// The generated types themselves.
const payload: EventMap['feature.used'] = { user_id, feature, count, plan } satisfies FeatureUsed;
const name: EventName = 'feature.used';
await ingest(name, payload);

// @ts-expect-error a field the schema does not have
await ingest('feature.used', { user_id, feature, count, plan, plann: 'pro' });
// @ts-expect-error count is a number
await ingest('feature.used', { user_id, feature, count: '3', plan });
// @ts-expect-error plan is required
await ingest('feature.used', { user_id, feature, count });
// @ts-expect-error an event name with no schema (a typo of feature.used)
await ingest('feature.usd', { user_id, feature, count, plan });
// @ts-expect-error an event that has a schema cannot skip it
await client.ingestUntyped('feature.used', { user_id });

export { id, duplicate };
