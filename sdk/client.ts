/**
 * The typed HTTP client of a Walrus-TS gateway. `client.api` is an openapi-fetch client over the
 * generated `paths`, so every operation of openapi.yaml is typed; the methods around it are the
 * short forms most programs want, throwing WalrusApiError (code, status, detail) on failure.
 * Retries follow the answer's advice (errors.ts), with bounded backoff: a retryable code (the
 * request was not applied) or a network failure before sending is retried for any request; an
 * OUTCOME_UNKNOWN answer or a network failure after the request may have been sent only for a
 * request that is safe to repeat (reads, idempotent updates, appends carrying a Producer-Id).
 */
import createClient, { type Client } from 'openapi-fetch';
import { backoffDelayMs, defaultRetryPolicy, type RetryPolicy, sleep } from './backoff.js';
import {
  codeOfStatus,
  mayHaveBeenAppliedCodes,
  retryableCodes,
  WalrusApiError,
  WalrusNetworkError,
} from './errors.js';
import type { components, paths } from './generated/api.js';
import { Producer, type ProducerOptions } from './producer.js';
import { type TailOptions, tailRecords } from './tail.js';
import {
  type AppendRecord,
  decodeRecord,
  encodeRecord,
  type ValueOf,
  type ValueType,
  type WalrusRecord,
} from './values.js';

export type Topic = components['schemas']['Topic'];
export type RecordInput = components['schemas']['RecordInput'];
export type AppendResult = components['schemas']['AppendResult'];
/** A read's answer, its record values decoded as the caller chose (`values`). */
export type ReadResult<V extends string | Uint8Array = string> = Omit<
  components['schemas']['ReadResult'],
  'records'
> & { records: WalrusRecord<V>[] };
export type Consumer = components['schemas']['Consumer'];
/** A consumer read's answer, its record values decoded as the caller chose (`values`). */
export type ConsumerReadResult<V extends string | Uint8Array = string> = Omit<
  components['schemas']['ConsumerReadResult'],
  'records'
> & { records: WalrusRecord<V>[] };
export type Retention = components['schemas']['Retention'];
/** When an append is answered: 'quorum' (default) or 'leader'. */
export type Acks = components['schemas']['Acks'];
/** A new topic's settings (the body of POST /v1/topics without its name). */
export type TopicSettings = Omit<components['schemas']['CreateTopicRequest'], 'name'>;
export type { AppendRecord, ValueType, WalrusRecord };

export interface WalrusHttpClientOptions {
  /** e.g. http://127.0.0.1:3000 */
  readonly baseUrl: string;
  /** Bearer token, when the gateway has tokens configured. */
  readonly token?: string;
  readonly retry?: Partial<RetryPolicy>;
  /**
   * A fetch implementation (default: the global fetch). It is always called as a plain function,
   * never as a method, so a browser's unbound `window.fetch` works.
   */
  readonly fetch?: typeof fetch;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface AppendOptions extends CallOptions {
  readonly producerId?: string;
  readonly producerSeq?: number;
  readonly expectedOffset?: number;
  /**
   * 'quorum' (the gateway's default): answered once a majority of the segment's replicas hold the
   * records durable; 'leader': once the segment leader alone does. The answer's `acks` says which.
   */
  readonly acks?: Acks;
}

export interface ReadOptions<V extends ValueType = 'string'> extends CallOptions {
  /** Record values as `'string'` (UTF-8 text; default) or `'bytes'` (Uint8Array). */
  readonly values?: V;
  readonly offset?: number;
  readonly timestamp?: number;
  readonly tailOffset?: number;
  readonly limit?: number;
  readonly maxBytes?: number;
  readonly clamp?: boolean;
  readonly waitMs?: number;
}

/** Statuses whose answers may carry a retryable or unknown-outcome code (the body says which). */
const adviceStatuses = new Set([409, 429, 502, 503, 504, 507]);
const repeatableMethods = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const readOnlyMethods = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Network failures that happen before any byte of the request is sent. */
const notSentErrorCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Bytes of a problem body read to learn its code; a longer body is not a problem of ours. */
const problemBodySizeMaxBytes = 64 * 1024;

function isRepeatable(request: Request): boolean {
  if (repeatableMethods.has(request.method)) return true;
  const path = new URL(request.url).pathname;
  return request.headers.has('producer-id') || path === '/v1/topics' || path.endsWith('/commit');
}

/** The server's Retry-After, capped by the policy's longest wait. */
function retryAfterMs(res: Response, policy: RetryPolicy): number {
  const value = Number(res.headers.get('retry-after'));
  return Number.isFinite(value) && value > 0 ? Math.min(value * 1000, policy.delayMsMax) : 0;
}

/** The code of an error answer: its problem body's, else what its status stands for. */
async function answerCode(res: Response): Promise<string> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (res.headers.get('content-type')?.includes('json') && length <= problemBodySizeMaxBytes) {
    try {
      const code = ((await res.clone().json()) as { code?: unknown }).code;
      if (typeof code === 'string') return code;
    } catch {
      // Not a problem body after all: fall back on the status.
    }
  }
  return codeOfStatus(res.status);
}

function networkErrorCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

/** A fetch that threw, as the caller must see it: was the request possibly applied? */
function networkFailure(request: Request, error: unknown): WalrusNetworkError {
  const sent = !notSentErrorCodes.has(networkErrorCode(error) ?? '');
  const code = sent && !readOnlyMethods.has(request.method) ? 'OUTCOME_UNKNOWN' : 'UNAVAILABLE';
  const what = sent ? 'the connection to the gateway failed' : 'the gateway could not be reached';
  return new WalrusNetworkError(code, `${what}: ${String(error)}`, { cause: error });
}

/**
 * fetch with bounded retries that follow the answer's advice: retryable codes (nothing was
 * applied) for any request; unknown outcomes only for requests that are safe to repeat.
 */
export function retryingFetch(
  base: typeof fetch,
  policy: RetryPolicy,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const repeatable = isRepeatable(request);
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= policy.attemptCountMax;
      const req = last ? request : request.clone();
      let res: Response;
      try {
        res = await base(req);
      } catch (error) {
        if (request.signal.aborted) throw error;
        const failure = networkFailure(request, error);
        const again = failure.code === 'UNAVAILABLE' || repeatable;
        if (last || !again) throw failure;
        await sleep(backoffDelayMs(policy, attempt), request.signal);
        continue;
      }
      if (last || res.ok || !adviceStatuses.has(res.status)) return res;
      const code = await answerCode(res);
      const again = retryableCodes.has(code) || (repeatable && mayHaveBeenAppliedCodes.has(code));
      if (!again) return res;
      const waitMs = Math.max(backoffDelayMs(policy, attempt), retryAfterMs(res, policy));
      await res.body?.cancel().catch(() => {});
      await sleep(waitMs, request.signal);
    }
  };
}

function fail(error: unknown, response: Response | undefined): never {
  const problem = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const status = response?.status ?? 0;
  const code =
    typeof problem['code'] === 'string' ? problem['code'] : status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
  const detail =
    typeof problem['detail'] === 'string' ? problem['detail'] : String(response?.statusText ?? error);
  throw new WalrusApiError(code, status, detail, problem);
}

/** Runs an openapi-fetch call: returns data, or throws WalrusApiError (network errors: UNAVAILABLE, status 0). */
async function call<T>(run: () => Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await run();
  } catch (error) {
    if (error instanceof WalrusApiError) throw error;
    if ((error as Error)?.name === 'AbortError') throw error;
    throw new WalrusNetworkError('UNAVAILABLE', `the gateway could not be reached: ${String(error)}`, {
      cause: error,
    });
  }
  if (result.error !== undefined || !result.response.ok) fail(result.error, result.response);
  return result.data as T;
}

export class WalrusHttpClient {
  /** Every operation of openapi.yaml, typed (openapi-fetch). */
  readonly api: Client<paths>;
  private readonly options: WalrusHttpClientOptions;
  private readonly authHeaders: Record<string, string>;
  /** The caller's fetch (or the global one) as a plain function: `this` is never a client object. */
  private readonly fetchFn: typeof fetch;

  constructor(options: WalrusHttpClientOptions) {
    this.options = options;
    const base = options.fetch ?? globalThis.fetch;
    // Browsers throw "Illegal invocation" when fetch is called as a method of anything but the
    // window, so it is never stored on an object and called through it.
    this.fetchFn = (input, init) => base(input, init);
    const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
    this.authHeaders = {
      ...options.headers,
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
    };
    this.api = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/$/, ''),
      fetch: retryingFetch(this.fetchFn, policy),
      headers: this.authHeaders,
    });
  }

  health(o: CallOptions = {}) {
    return call(() => this.api.GET('/v1/health', { ...o }));
  }

  ready(o: CallOptions = {}) {
    return call(() => this.api.GET('/v1/ready', { ...o }));
  }

  cluster(o: CallOptions = {}) {
    return call(() => this.api.GET('/v1/cluster', { ...o }));
  }

  /**
   * Creates the topic, or returns it when it exists with the same settings. `replicationFactor`:
   * copies of each segment (1..7, at most the voters; default min(3, voters)).
   */
  createTopic(name: string, settings: TopicSettings = {}, o: CallOptions = {}): Promise<Topic> {
    return call(() => this.api.POST('/v1/topics', { body: { name, ...settings }, ...o }));
  }

  async listTopics(o: CallOptions = {}): Promise<Topic[]> {
    return (await call(() => this.api.GET('/v1/topics', { ...o }))).topics;
  }

  describeTopic(topic: string, o: CallOptions = {}): Promise<Topic> {
    return call(() => this.api.GET('/v1/topics/{topic}', { params: { path: { topic } }, ...o }));
  }

  configureTopic(topic: string, retention: Retention, o: CallOptions = {}): Promise<Topic> {
    return call(() =>
      this.api.PATCH('/v1/topics/{topic}', { params: { path: { topic } }, body: { retention }, ...o }),
    );
  }

  async deleteTopic(topic: string, o: CallOptions = {}): Promise<void> {
    await call(() => this.api.DELETE('/v1/topics/{topic}', { params: { path: { topic } }, ...o }));
  }

  /**
   * Appends records atomically, in one request; strings are UTF-8 values, Uint8Arrays bytes. For a
   * stream of records, `producer()` batches, retries and deduplicates for you.
   */
  append(
    topic: string,
    records: readonly (AppendRecord | RecordInput)[],
    o: AppendOptions = {},
  ): Promise<AppendResult> {
    const body = { records: records.map(encodeRecord) };
    const header: Record<string, string> = {};
    if (o.producerId !== undefined) header['Producer-Id'] = o.producerId;
    if (o.producerSeq !== undefined) header['Producer-Seq'] = String(o.producerSeq);
    if (o.expectedOffset !== undefined) header['Expected-Offset'] = String(o.expectedOffset);
    return call(() =>
      this.api.POST('/v1/topics/{topic}/records', {
        params: { path: { topic }, ...(o.acks === undefined ? {} : { query: { acks: o.acks } }) },
        body,
        headers: header,
        ...(o.signal ? { signal: o.signal } : {}),
      }),
    );
  }

  /** Reads records; their values are strings, or Uint8Arrays with `values: 'bytes'`. */
  async read<V extends ValueType = 'string'>(
    topic: string,
    o: ReadOptions<V> = {},
  ): Promise<ReadResult<ValueOf<V>>> {
    const { signal, values, ...query } = o;
    const wire = (await call(() =>
      this.api.GET('/v1/topics/{topic}/records', {
        params: { path: { topic }, query },
        headers: { accept: 'application/json' },
        ...(signal ? { signal } : {}),
      }),
    )) as components['schemas']['ReadResult'];
    const as = (values ?? 'string') as V;
    return { ...wire, records: wire.records.map((r) => decodeRecord(r, as)) };
  }

  async consumerRead<V extends ValueType = 'string'>(
    topic: string,
    consumer: string,
    o: CallOptions & { limit?: number; maxBytes?: number; autoCommit?: boolean; values?: V } = {},
  ): Promise<ConsumerReadResult<ValueOf<V>>> {
    const { signal, values, ...query } = o;
    const wire = await call(() =>
      this.api.POST('/v1/topics/{topic}/consumers/{consumer}/read', {
        params: { path: { topic, consumer }, query },
        ...(signal ? { signal } : {}),
      }),
    );
    const as = (values ?? 'string') as V;
    return { ...wire, records: wire.records.map((r) => decodeRecord(r, as)) };
  }

  /**
   * Moves the cursor to `offset`; with `expectedOffset` (the cursor the records were read from) a
   * compare-and-set: OFFSET_MISMATCH when the cursor moved meanwhile, and a late or retried commit
   * never moves it back.
   */
  consumerCommit(
    topic: string,
    consumer: string,
    offset: number,
    o: CallOptions & { expectedOffset?: number } = {},
  ): Promise<Consumer> {
    const { expectedOffset, ...rest } = o;
    return call(() =>
      this.api.POST('/v1/topics/{topic}/consumers/{consumer}/commit', {
        params: { path: { topic, consumer } },
        body: expectedOffset === undefined ? { offset } : { offset, expectedOffset },
        ...rest,
      }),
    );
  }

  consumerGet(topic: string, consumer: string, o: CallOptions = {}): Promise<Consumer> {
    return call(() =>
      this.api.GET('/v1/topics/{topic}/consumers/{consumer}', {
        params: { path: { topic, consumer } },
        ...o,
      }),
    );
  }

  /**
   * Tails a topic over SSE: `for await (const record of client.tail('logs', { from: 0 }))`.
   * Resumes after disconnects from the last record seen; `break` closes the connection.
   */
  tail<V extends ValueType = 'string'>(
    topic: string,
    options: TailOptions<V> = {},
  ): AsyncGenerator<WalrusRecord<ValueOf<V>>, void, undefined> {
    return tailRecords(
      { baseUrl: this.options.baseUrl, headers: this.authHeaders, fetch: this.fetchFn },
      topic,
      options,
    );
  }

  /**
   * A producer for `topic`: `await producer.append(value)` buffers (waiting when the buffer is
   * full), batches by count, bytes and `lingerMs`, and appends in order exactly once, retrying a
   * batch with the same Producer-Seq; `(await producer.append(v)).ack()` resolves with the offset;
   * `flush()`, `close()`.
   */
  producer(topic: string, options: ProducerOptions = {}): Producer {
    return new Producer(
      {
        baseUrl: this.options.baseUrl,
        headers: this.authHeaders,
        retryingFetch: (policy) => retryingFetch(this.fetchFn, policy),
      },
      topic,
      options,
    );
  }
}

export function createWalrusClient(options: WalrusHttpClientOptions): WalrusHttpClient {
  return new WalrusHttpClient(options);
}
