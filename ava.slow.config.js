// The slower suites (real multi-process clusters, faults, HTTP conformance, VM infrastructure): run one file at a time.
export default {
  files: [
    'dist/test/cluster/**/*.test.js',
    'dist/test/fault/**/*.test.js',
    'dist/test/conformance/**/*.test.js',
    'dist/test/infra/**/*.test.js',
  ],
  timeout: '5m',
  concurrency: 1,
  workerThreads: false,
};
