// Must NOT compile: the mistakes of valid.ts without their `@ts-expect-error`. Each line
// ends with the error tsc must report on it; test/types.test.mjs compares them exactly.

import { IngestLayer, ingest } from '@ingestlayer/sdk';

declare const user_id: string;
declare const feature: string;
declare const count: number;
declare const plan: string;
declare const client: IngestLayer;

await ingest('feature.used', { user_id, feature, count, plan, plann: 'pro' }); // error TS2561
await ingest('feature.used', { user_id, feature, count: '3', plan }); // error TS2322
await ingest('feature.used', { user_id, feature, count }); // error TS2741
await ingest('feature.usd', { user_id, feature, count, plan }); // error TS2345
await client.ingestUntyped('feature.used', { user_id }); // error TS2345
