/**
 * The Durable Streams server conformance suite (@durable-streams/server-conformance-tests,
 * pinned) against 3 real nodes and the gateway that global-setup.ts starts. Its CLI is broken
 * from npm, so its tests are registered here. Run: npm run build && npm run test:ds
 */
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { inject } from 'vitest';

runConformanceTests({ baseUrl: inject('dsBaseUrl') });
