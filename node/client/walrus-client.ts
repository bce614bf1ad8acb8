/**
 * The public client of a Walrus-TS cluster over the binary protocol, used by the gateway and the
 * CLI. It encodes typed requests, sends them through one pipelined connection per node, decodes
 * replies, and throws `WalrusError` with the server's code on error replies.
 *
 * Routing (leader-cache.ts): a request about a topic goes to the node that last led it, else to
 * the preferred node. NOT_LEADER with a leader hint re-routes at once; a connection failure or
 * UNAVAILABLE moves on to the next configured node. Appends ask not to be forwarded (`noForward`):
 * the first one to a node that does not lead the topic's active segment learns the leader, and the
 * rest go straight there (other requests are forwarded by the node they reach).
 *
 * Retries are bounded (`retryCountMax`, capped exponential backoff, within the call's deadline)
 * and only for retryable codes (errorCodeInfo[code].retryable: such a code means nothing was
 * applied). A request that is not idempotent (an append without producerId+producerSeq, a
 * consumerReadNext with autoCommit) is retried only when it certainly was not applied: the
 * connection never carried it (TransportError.sent false), or the server answered a code that
 * says so (a retryable code: NOT_LEADER, BUSY, UNAVAILABLE…, never OUTCOME_UNKNOWN).
 *
 * Honest outcomes: when a request that changes state was sent and its connection then failed or
 * timed out (TransportError with `sent`), or the server answered OUTCOME_UNKNOWN, the caller gets
 * OUTCOME_UNKNOWN (not retryable, `mayHaveBeenApplied`), never UNAVAILABLE or TIMEOUT, which would
 * invite a blind retry and a duplicate. Only an idempotent producer's append is retried after
 * such a failure: the segment leader answers a repeated producerSeq with the original offsets
 * (`duplicate: true`). Reads and other requests that change nothing keep their retryable code.
 */
import assert from 'node:assert';
import type tls from 'node:tls';
import { decodeReply, encodeRequest } from '../protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { changesState, isIdempotent, outcomeUnknownError } from '../protocol/outcome.js';
import type {
  AppendAcks,
  ConsumerInfo,
  RecordInput,
  Request,
  RequestOp,
  ResponseOf,
  RetentionSettings,
  StreamAction,
  StreamReply,
  TopicInfo,
} from '../protocol/messages.js';
import { ConnectionPool } from '../transport/connection-pool.js';
import type { TransportLogger } from '../transport/frame-server.js';
import { TransportError } from '../transport/transport-error.js';
import { LeaderCache } from './leader-cache.js';
import type { NodeAddress } from './node-address.js';

export interface WalrusClientOptions {
  /** Client ports of cluster nodes, `host:port`; at least one. */
  readonly nodes: readonly string[];
  /** Time limit of one call including its retries (a read's waitMs is added). Default 30000. */
  readonly requestTimeoutMs?: number;
  /** Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Requests in flight per node connection. Default 256. */
  readonly inFlightMaxPerConnection?: number;
  /** Requests waiting for an in-flight slot per connection; beyond it BUSY. Default 4096. */
  readonly waitQueueMaxPerConnection?: number;
  /** Retries after the first attempt. Default 5. */
  readonly retryCountMax?: number;
  /**
   * The client token every connection proves first (nodes started with client tokens), or a
   * function read at each connect (a token replaced while the client runs). Default none.
   */
  readonly token?: string | (() => string);
  /** TLS to the nodes' client ports: `ca` (PEM) to verify them, `cert`/`key` for mutual TLS. Default plain TCP. */
  readonly tls?: tls.ConnectionOptions;
  /** First retry backoff, doubled per retry. Default 25. */
  readonly retryBackoffMsMin?: number;
  /** Cap of the retry backoff. Default 1000. */
  readonly retryBackoffMsMax?: number;
  readonly logger?: TransportLogger;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Overrides requestTimeoutMs for this call. */
  readonly timeoutMs?: number;
}

export interface AppendOptions extends CallOptions {
  readonly producerId?: string;
  readonly producerSeq?: number;
  readonly expectedOffset?: number;
  /**
   * 'quorum' (default): answered once a majority of the segment's replicas hold the batch durable;
   * 'leader': once the segment leader alone does (faster, but lost if the leader is lost before
   * its followers catch up).
   */
  readonly acks?: AppendAcks;
  /** A Durable Streams producer epoch (needs producerId and producerSeq): higher epochs fence lower ones. */
  readonly producerEpoch?: number;
  /** Close the stream after these records (which may be none): later appends get STREAM_CLOSED. */
  readonly close?: boolean;
  /** A Durable Streams writer's Stream-Seq: refused (SEQUENCE_MISMATCH) unless above the last one. */
  readonly streamSeq?: string;
}

type AppendRequest = Extract<Request, { op: 'append' }>;

/** An append's answer; `acks` says what was achieved (a decoded reply always carries it). */
export type AppendResult = ResponseOf<'append'> & { readonly acks: AppendAcks };

/** A new topic's settings: retention (absent fields: the node's defaults) and replication factor. */
export interface TopicSettings extends Partial<RetentionSettings> {
  /** Copies of each segment, 1..7 and at most the number of voters; absent: min(3, voters). */
  readonly replicationFactor?: number;
}

export interface ReadOptions extends CallOptions {
  /** Default 1000. */
  readonly recordCountMax?: number;
  /** Default 1 MiB. */
  readonly byteCountMax?: number;
  /** Long poll; default 0. */
  readonly waitMs?: number;
}

export interface ConsumerReadOptions extends CallOptions {
  readonly recordCountMax?: number;
  readonly byteCountMax?: number;
  /** Default true. */
  readonly autoCommit?: boolean;
}

export const walrusClientDefaults = {
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  inFlightMaxPerConnection: 256,
  waitQueueMaxPerConnection: 4_096,
  retryCountMax: 5,
  retryBackoffMsMin: 25,
  retryBackoffMsMax: 1_000,
  readRecordCountMax: 1_000,
  readByteCountMax: 1024 * 1024,
  /**
   * After a leader address learnt from a NOT_LEADER hint (not one of the configured nodes) could
   * not be reached, appends stop asking for redirects (`noForward`) for this long: the nodes
   * forward them instead (their advertised client addresses may not be reachable from here).
   */
  redirectPauseMs: 30_000,
  /**
   * NOT_LEADER redirects of a `noForward` append followed in one call without counting as retries
   * (a client with retries off still reaches the leader, as when nodes forwarded for it).
   */
  redirectCountMax: 3,
} as const;

function topicOf(request: Request): string | undefined {
  return 'topic' in request ? request.topic : undefined;
}

/**
 * True when the request may have been applied although it failed: it was sent and the connection
 * then failed or timed out before the reply, or the server itself could not tell.
 */
function isAmbiguous(failure: WalrusError): boolean {
  if (failure.code === ErrorCode.OUTCOME_UNKNOWN) return true;
  return failure instanceof TransportError && failure.sent && failure.retryable;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class WalrusClient {
  private readonly o: Required<Omit<WalrusClientOptions, 'logger' | 'nodes' | 'token' | 'tls'>>;
  private readonly routes: LeaderCache;
  private readonly pool: ConnectionPool;
  private closed = false;
  /** Until when appends go without `noForward` (see walrusClientDefaults.redirectPauseMs). */
  private redirectsPausedUntilMs = 0;

  constructor(options: WalrusClientOptions) {
    if (!Array.isArray(options.nodes) || options.nodes.length === 0) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'a WalrusClient needs at least one node address');
    }
    const d = walrusClientDefaults;
    this.o = {
      requestTimeoutMs: options.requestTimeoutMs ?? d.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      inFlightMaxPerConnection: options.inFlightMaxPerConnection ?? d.inFlightMaxPerConnection,
      waitQueueMaxPerConnection: options.waitQueueMaxPerConnection ?? d.waitQueueMaxPerConnection,
      retryCountMax: options.retryCountMax ?? d.retryCountMax,
      retryBackoffMsMin: options.retryBackoffMsMin ?? d.retryBackoffMsMin,
      retryBackoffMsMax: options.retryBackoffMsMax ?? d.retryBackoffMsMax,
    };
    assert(this.o.requestTimeoutMs > 0 && this.o.retryCountMax >= 0 && this.o.retryCountMax <= 100);
    assert(this.o.retryBackoffMsMin > 0 && this.o.retryBackoffMsMax >= this.o.retryBackoffMsMin);
    this.routes = new LeaderCache(options.nodes);
    this.pool = new ConnectionPool({
      connectTimeoutMs: this.o.connectTimeoutMs,
      requestTimeoutMs: this.o.requestTimeoutMs,
      inFlightMax: this.o.inFlightMaxPerConnection,
      waitQueueMax: this.o.waitQueueMaxPerConnection,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
  }

  /** Sends one typed request, with routing and bounded retries; throws WalrusError on failure. */
  async request<Op extends RequestOp>(
    request: Extract<Request, { op: Op }>,
    options: CallOptions = {},
  ): Promise<ResponseOf<Op>> {
    if (this.closed) throw new WalrusError(ErrorCode.UNAVAILABLE, 'the client is closed');
    // Encode once, up front: bad arguments fail before anything is sent, and retries reuse the bytes.
    let encoded = encodeRequest(0, request);
    let req: Request = request;
    const topic = topicOf(req);
    const waitMs = req.op === 'read' ? req.waitMs : 0;
    const totalMs = (options.timeoutMs ?? this.o.requestTimeoutMs) + waitMs;
    const deadlineMs = Date.now() + totalMs;
    const idempotent = isIdempotent(req);
    let target = this.routes.route(topic);
    let lastFailure: WalrusError | undefined;
    let redirects = 0;
    for (let attempt = 0; ; attempt += 1) {
      if (this.closed) throw new WalrusError(ErrorCode.UNAVAILABLE, 'the client was closed');
      const remainingMs = attempt === 0 ? totalMs : deadlineMs - Date.now();
      if (remainingMs <= 0) {
        throw lastFailure ?? new WalrusError(ErrorCode.TIMEOUT, `${request.op} timed out`);
      }
      if (req.op === 'append' && req.noForward === true && this.redirectsPaused()) {
        req = { ...req, noForward: false };
        encoded = encodeRequest(0, req);
      }
      let failure: WalrusError;
      try {
        const conn = this.pool.get(target.key, target.host, target.port);
        // The same bytes for every attempt: the connection sends a copy under a request id of its own.
        const signal = options.signal;
        const payload = await conn.request(
          encoded,
          signal === undefined ? { timeoutMs: remainingMs } : { timeoutMs: remainingMs, signal },
        );
        return this.readAttemptReply(target, req, payload) as ResponseOf<Op>;
      } catch (err) {
        if (!(err instanceof WalrusError)) throw err; // aborted by the caller, or a bug
        failure = err;
      }
      const next = this.afterFailure(target, topic, failure);
      if (
        req.op === 'append' &&
        req.noForward === true &&
        failure.code === ErrorCode.NOT_LEADER &&
        failure.leaderHint !== undefined &&
        next.key !== target.key &&
        redirects < walrusClientDefaults.redirectCountMax
      ) {
        // Redirected before anything was applied: not a retry.
        redirects += 1;
        attempt -= 1;
        lastFailure = failure;
        target = next;
        continue;
      }
      const ambiguous = isAmbiguous(failure);
      // A server's retryable code says that nothing was applied (error-codes.ts).
      const definitelyNotApplied =
        failure instanceof TransportError ? !failure.sent : !failure.mayHaveBeenApplied;
      const mayRetry =
        (failure.retryable || (ambiguous && idempotent)) &&
        (idempotent || definitelyNotApplied) &&
        attempt < this.o.retryCountMax;
      lastFailure = ambiguous && changesState(req) ? outcomeUnknownError(req.op, failure) : failure;
      if (!mayRetry) throw lastFailure;
      // Follow a fresh leader hint at once; otherwise back off before the next attempt.
      const followHint = failure.code === ErrorCode.NOT_LEADER && failure.leaderHint !== undefined;
      if (!(followHint && next.key !== target.key)) {
        const backoffMs = Math.min(this.o.retryBackoffMsMax, this.o.retryBackoffMsMin * 2 ** attempt);
        await sleep(Math.min(backoffMs, Math.max(0, deadlineMs - Date.now())), options.signal);
      }
      target = next;
    }
  }

  private redirectsPaused(): boolean {
    // No clock read per append unless a pause was ever set.
    if (this.redirectsPausedUntilMs === 0) return false;
    if (Date.now() < this.redirectsPausedUntilMs) return true;
    this.redirectsPausedUntilMs = 0;
    return false;
  }

  /** Updates routing after a failure and returns where to try next. */
  private afterFailure(target: NodeAddress, topic: string | undefined, failure: WalrusError): NodeAddress {
    if (failure.code === ErrorCode.NOT_LEADER) {
      if (failure.leaderHint !== undefined) {
        try {
          return this.routes.learnLeader(topic, failure.leaderHint.clientAddr);
        } catch {
          // An unusable hint: fall through to forgetting the leader.
        }
      }
      this.routes.forgetLeader(topic);
      this.routes.markFailed(target);
      return this.routes.route(topic);
    }
    if (failure.code === ErrorCode.UNAVAILABLE || failure instanceof TransportError) {
      if (failure instanceof TransportError && !this.routes.nodes.some((n) => n.key === target.key))
        this.redirectsPausedUntilMs = Date.now() + walrusClientDefaults.redirectPauseMs;
      this.routes.markFailed(target);
      return this.routes.route(topic);
    }
    return target;
  }

  /** The response in an attempt's reply; throws WalrusError for an error reply or a bad one. */
  private readAttemptReply(target: NodeAddress, request: Request, payload: Buffer): unknown {
    const reply = decodeReply(payload);
    if (reply.kind === 'malformed') {
      throw new WalrusError(
        ErrorCode.INTERNAL,
        `malformed reply from ${target.key}: ${reply.error.message}`,
        {
          cause: reply.error,
        },
      );
    }
    if (reply.kind === 'error') {
      const e = reply.error;
      throw new WalrusError(
        e.code,
        e.message,
        e.leaderHint === undefined ? {} : { leaderHint: e.leaderHint },
      );
    }
    if (reply.op !== request.op) {
      throw new WalrusError(
        ErrorCode.INTERNAL,
        `${target.key} answered ${request.op} with a ${reply.op} reply`,
      );
    }
    return reply.response;
  }

  // ---- typed conveniences ------------------------------------------------------------------------

  async ping(options?: CallOptions): Promise<{ nodeId: number }> {
    return this.request({ op: 'ping' }, options);
  }

  async createTopic(
    topic: string,
    settings?: TopicSettings,
    options?: CallOptions,
  ): Promise<{ created: boolean; topic: TopicInfo }> {
    const { replicationFactor, ...retention } = settings ?? {};
    return this.request(
      {
        op: 'createTopic',
        topic,
        ...(Object.keys(retention).length === 0 ? {} : { retention }),
        ...(replicationFactor === undefined ? {} : { replicationFactor }),
      },
      options,
    );
  }

  /** A Durable Streams action on a topic (create, get, delete, touch, producer state). */
  async stream(topic: string, action: StreamAction, options?: CallOptions): Promise<StreamReply> {
    return this.request({ op: 'stream', topic, action }, options);
  }

  async describeTopic(topic: string, options?: CallOptions): Promise<TopicInfo> {
    return (await this.request({ op: 'describeTopic', topic }, options)).topic;
  }

  async listTopics(options?: CallOptions): Promise<readonly TopicInfo[]> {
    return (await this.request({ op: 'listTopics' }, options)).topics;
  }

  async deleteTopic(topic: string, options?: CallOptions): Promise<{ deleted: boolean }> {
    return this.request({ op: 'deleteTopic', topic }, options);
  }

  async configureTopic(
    topic: string,
    retention: Partial<RetentionSettings>,
    options?: CallOptions,
  ): Promise<TopicInfo> {
    return (await this.request({ op: 'configureTopic', topic, retention }, options)).topic;
  }

  /**
   * Not an async function: an async one returning request()'s promise cost a promise of its own and
   * a thenable job per append (every append passes here); nothing in it throws.
   */
  append(topic: string, records: readonly RecordInput[], options: AppendOptions = {}): Promise<AppendResult> {
    // Built field by field (no spreads of temporary objects): this runs for every append.
    const request: { -readonly [K in keyof AppendRequest]: AppendRequest[K] } = {
      op: 'append',
      topic,
      records,
    };
    if (options.producerId !== undefined) request.producerId = options.producerId;
    if (options.producerSeq !== undefined) request.producerSeq = options.producerSeq;
    if (options.expectedOffset !== undefined) request.expectedOffset = options.expectedOffset;
    if (options.acks !== undefined) request.acks = options.acks;
    if (options.producerEpoch !== undefined) request.producerEpoch = options.producerEpoch;
    if (options.close === true) request.close = true;
    if (options.streamSeq !== undefined) request.streamSeq = options.streamSeq;
    // Straight to the segment leader: a node that does not lead it names it (NOT_LEADER) and
    // the route is cached, rather than forwarding every append through itself.
    if (!this.redirectsPaused()) request.noForward = true;
    // `options` is also the call's options (request() reads only signal and timeoutMs of it).
    return this.request(request, options) as Promise<AppendResult>;
  }

  async read(topic: string, offset: number, options: ReadOptions = {}): Promise<ResponseOf<'read'>> {
    const { recordCountMax, byteCountMax, waitMs, ...call } = options;
    return this.request(
      {
        op: 'read',
        topic,
        offset,
        recordCountMax: recordCountMax ?? walrusClientDefaults.readRecordCountMax,
        byteCountMax: byteCountMax ?? walrusClientDefaults.readByteCountMax,
        waitMs: waitMs ?? 0,
      },
      call,
    );
  }

  async offsetForTimestamp(topic: string, timestampMs: number, options?: CallOptions): Promise<number> {
    return (await this.request({ op: 'offsetForTimestamp', topic, timestampMs }, options)).offset;
  }

  async consumerReadNext(
    topic: string,
    consumer: string,
    options: ConsumerReadOptions = {},
  ): Promise<ResponseOf<'consumerReadNext'>> {
    const { recordCountMax, byteCountMax, autoCommit, ...call } = options;
    return this.request(
      {
        op: 'consumerReadNext',
        topic,
        consumer,
        recordCountMax: recordCountMax ?? walrusClientDefaults.readRecordCountMax,
        byteCountMax: byteCountMax ?? walrusClientDefaults.readByteCountMax,
        autoCommit: autoCommit ?? true,
      },
      call,
    );
  }

  /**
   * Moves the consumer's cursor to `offset`. With `expectedOffset` (the cursor the records were read
   * from) it is a compare-and-set: OFFSET_MISMATCH when the cursor has moved meanwhile, and a late
   * or retried commit never moves it back.
   */
  async consumerCommit(
    topic: string,
    consumer: string,
    offset: number,
    options: CallOptions & { readonly expectedOffset?: number } = {},
  ): Promise<ConsumerInfo> {
    const { expectedOffset, ...call } = options;
    return (
      await this.request(
        {
          op: 'consumerCommit',
          topic,
          consumer,
          offset,
          ...(expectedOffset === undefined ? {} : { expectedOffset }),
        },
        call,
      )
    ).consumer;
  }

  async consumerGet(topic: string, consumer: string, options?: CallOptions): Promise<ConsumerInfo> {
    return (await this.request({ op: 'consumerGet', topic, consumer }, options)).consumer;
  }

  /** The topic's named consumers and their cursors, by name. */
  async consumerList(topic: string, options?: CallOptions): Promise<readonly ConsumerInfo[]> {
    return (await this.request({ op: 'consumerList', topic }, options)).consumers;
  }

  /** Forgets a consumer's cursor; false when it had none. */
  async consumerDelete(topic: string, consumer: string, options?: CallOptions): Promise<boolean> {
    return (await this.request({ op: 'consumerDelete', topic, consumer }, options)).deleted;
  }

  /** Seed 002's METRICS JSON of the node that answers. */
  async metrics(options?: CallOptions): Promise<unknown> {
    return (await this.request({ op: 'metrics' }, options)).metrics;
  }

  /** Seed 002's STATE JSON of a topic. */
  async state(topic: string, options?: CallOptions): Promise<unknown> {
    return (await this.request({ op: 'state', topic }, options)).state;
  }

  /** Closes every connection; pending calls fail UNAVAILABLE and later calls are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }
}
