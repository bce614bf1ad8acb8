/**
 * The gateway's limits in one place, with their relations asserted at load. Every buffer, queue
 * and loop in gateway/ takes its bound from here; docs/http-api.md lists them with reasons.
 */
import assert from 'node:assert';
import { protocolLimits } from '../node/protocol/limits.js';

/** Largest request body accepted (413 beyond). Fits a full batch of small records with JSON overhead. */
export const bodySizeMaxBytes = 8 * 1024 * 1024;
/** Records in one append request (an atomic batch). */
export const appendRecordCountMax = 1000;
/**
 * Plain appends to one topic in one event-loop turn go to the cluster as one batch
 * (append-coalescer.ts) of at most this many records and bytes (values and headers); a request
 * larger than either goes alone.
 */
export const coalescedAppendRecordCountMax = 1000;
export const coalescedAppendSizeMaxBytes = 1024 * 1024;
/**
 * Joined appends to one topic in flight upstream at once (append-coalescer.ts). The plain appends
 * that arrive meanwhile wait in one group until it settles, at most coalescedAppendHoldMsMax: the
 * node would queue them behind its group commit anyway, and one upstream append per round trip
 * instead of one per turn cut the gateway's and the node's CPU per append (undici load, 50
 * connections, two stacks side by side: 14 → 20 appends per group commit, gateway CPU per append
 * −6 to −15%, the node's −18 to −21%, appends/s the same to +6%).
 */
export const coalescedAppendInFlightMax = 1;
/** Longest a group waits behind the appends in flight before it is sent anyway (a stalled node). */
export const coalescedAppendHoldMsMax = 200;
/** Headers per record, and their name/value sizes. */
export const recordHeaderCountMax = 64;
export const recordHeaderNameLengthMax = 256;
export const recordHeaderValueLengthMax = 4096;
/** Producer ids are visible ASCII of at most this length. */
export const producerIdLengthMax = 128;

/** Records and bytes one read answers at most, and the defaults when the client names none. */
export const readRecordCountMax = 1000;
export const readRecordCountDefault = 100;
export const readByteCountMax = 4 * 1024 * 1024;
export const readByteCountDefault = 1024 * 1024;
/** Longest long-poll a client may ask for. */
export const readWaitMsMax = 30_000;
/** A consumer read's long poll: wait-then-read rounds at most (each ends when records arrive). */
export const consumerWaitRoundCountMax = 8;

/** Topics on one page of GET /v1/topics, and the default page size. */
export const topicListCountMax = 1000;
export const topicListCountDefault = 100;
/** Describe calls one GET /v1/topics has in flight at once (each asks a topic's segment leader its end). */
export const topicListConcurrencyMax = 16;
/** Topics one multi-topic SSE tail (GET /v1/tail) follows at most. */
export const tailTopicCountMax = 16;

/** Requests being handled at once (SSE tails excluded); beyond this the answer is 429 BUSY. */
export const requestsInFlightMax = 10_000;

/** SSE: concurrent tails held by one gateway, and topics with a live upstream reader. */
export const sseSubscriberCountMax = 20_000;
export const sseTopicCountMax = 10_000;
/** SSE: bytes queued for one subscriber before it counts as too slow and is disconnected. */
export const sseBufferBytesMax = 1024 * 1024;
/** SSE: a catching-up subscriber pauses reading upstream while this much is still queued. */
export const sseCatchUpPauseBytes = 256 * 1024;
/** SSE: heartbeat comment period; the issue requires at most 15 s between heartbeats. */
export const sseHeartbeatIntervalMs = 10_000;
/** SSE: long-poll wait of the shared upstream reader of a topic. */
export const sseLiveReadWaitMs = 5_000;
/** SSE: records and bytes one upstream read of a feed asks for. */
export const sseReadRecordCountMax = 1000;
export const sseReadByteCountMax = 1024 * 1024;
/** SSE: consecutive failed upstream reads before a feed gives up and closes its subscribers. */
export const sseReadFailureCountMax = 20;
/** SSE: backoff between failed upstream reads. */
export const sseRetryDelayMsMin = 50;
export const sseRetryDelayMsMax = 2_000;
/** SSE: a closed slow subscriber's socket is destroyed if its queue has not drained by then. */
export const sseCloseGraceMs = 5_000;

/** Upstream calls: attempts at the gateway (node/client already retries below; this bounds the product). */
export const upstreamAttemptCountMax = 2;
export const upstreamRetryDelayMsMin = 25;
export const upstreamRetryDelayMsMax = 500;
/** Upstream call timeout when no long poll is involved. */
export const upstreamTimeoutMs = 10_000;

/** HTTP server: slow-client protection and the connection ceiling. */
export const headersTimeoutMs = 10_000;
export const requestTimeoutMs = 30_000;
export const keepAliveTimeoutMs = 5_000;
/** How often the HTTP server checks those timeouts. */
export const connectionsCheckIntervalMs = 1_000;
export const connectionCountMax = 25_000;
/** Bytes of the request line plus headers (node:http's maxHeaderSize); beyond it 431 HEADERS_TOO_LARGE. */
export const headerSizeMaxBytes = 16 * 1024;
/** After a problem answer from the HTTP layer (431, 408, 400), the connection is closed within this. */
export const clientErrorLingerMs = 1_000;
/** Graceful shutdown: how long to wait for in-flight requests before closing anyway. */
export const shutdownGraceMs = 5_000;

assert(readRecordCountDefault <= readRecordCountMax);
assert(topicListCountDefault <= topicListCountMax && topicListConcurrencyMax >= 1);
assert(readByteCountDefault <= readByteCountMax);
assert(sseHeartbeatIntervalMs <= 15_000, 'heartbeats must be at most 15 s apart');
assert(sseCatchUpPauseBytes < sseBufferBytesMax);
assert(sseSubscriberCountMax < connectionCountMax, 'tails must leave connections for other requests');
assert(sseLiveReadWaitMs + 5_000 <= requestTimeoutMs);
assert(connectionsCheckIntervalMs < headersTimeoutMs);
assert(sseRetryDelayMsMin <= sseRetryDelayMsMax);
assert(upstreamRetryDelayMsMin <= upstreamRetryDelayMsMax);
// A joined batch must be one the node takes (with room for the frame's per-record overhead).
assert(coalescedAppendRecordCountMax <= protocolLimits.batchRecordCountMax);
assert(coalescedAppendSizeMaxBytes * 2 <= protocolLimits.batchSizeMaxBytes);
