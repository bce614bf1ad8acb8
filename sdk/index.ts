/**
 * The Walrus-TS SDK (`import … from 'walrus-ts/sdk'`): a typed HTTP client generated from
 * openapi.yaml, an SSE tail, an idempotent batching producer, typed errors. Web-platform APIs
 * only (fetch, streams, TextEncoder, atob): it runs in Node, browsers, workers and edge runtimes.
 */
export { backoffDelayMs, defaultRetryPolicy, type RetryPolicy } from './backoff.js';
export {
  type Acks,
  type AppendOptions,
  type AppendRecord,
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
  type ValueType,
  WalrusHttpClient,
  type WalrusHttpClientOptions,
  type WalrusRecord,
} from './client.js';
export {
  ErrorCode,
  httpStatusOfCode,
  isErrorCode,
  mayHaveBeenAppliedCodes,
  type ProblemBody,
  retryableCodes,
  WalrusApiError,
  WalrusNetworkError,
} from './errors.js';
export type { components, paths } from './generated/api.js';
export {
  type AppendTicket,
  Producer,
  type ProducerOptions,
  producerDefaults,
  type RecordAck,
} from './producer.js';
export { type SseEvent, SseParser } from './sse-parser.js';
export { type TailOptions, tailRecords } from './tail.js';
export { base64ToBytes, bytesToBase64 } from './values.js';
