/**
 * vitest configuration of the DS conformance run only (the rest of the tests are ava's): one
 * file, a cluster started once for it, generous timeouts for a loaded 2-core machine.
 */
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: path.resolve(import.meta.dirname, '../..'),
    include: ['test/ds-conformance/**/*.test.ts'],
    globalSetup: ['test/ds-conformance/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
