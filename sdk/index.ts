/** The Walrus-TS SDK: a typed HTTP client generated from openapi.yaml, an SSE tail, one error class. */
export { backoffDelayMs, defaultRetryPolicy, type RetryPolicy } from './backoff.js';
export {
  type Acks,
  type AppendOptions,
  type AppendResult,
  type CallOptions,
  type Consumer,
  type ConsumerReadResult,
  createWalrusClient,
  type ReadOptions,
  type ReadResult,
  type RecordInput,
  type Retention,
  retryingFetch,
  type Topic,
  type TopicSettings,
  WalrusHttpClient,
  type WalrusHttpClientOptions,
  type WalrusRecord,
} from './client.js';
export {
  ErrorCode,
  mayHaveBeenAppliedCodes,
  type ProblemBody,
  retryableCodes,
  WalrusApiError,
} from './errors.js';
export type { components, paths } from './generated/api.js';
export { type SseEvent, SseParser } from './sse-parser.js';
export { type TailOptions, tailRecords } from './tail.js';
