/**
 * producer(topic): appends in order, batched, never duplicated, with bounded memory (S2's producer,
 * nats.js publish). Records wait in a buffer and leave as one batch (one POST) when the batch is
 * full by count or bytes, or when the oldest has waited `lingerMs`, or on flush()/close().
 *
 * Exactly once, in order: every batch carries the producer's `Producer-Id` and the next
 * `Producer-Seq`; a failed batch is retried with the SAME sequence (also after OUTCOME_UNKNOWN or
 * a broken connection: the cluster answers a repeat of the last sequence with the first answer,
 * `duplicate: true`). The cluster deduplicates only the last sequence of a producer, and a later
 * sequence sent before an earlier one was applied is refused, so at most one batch is in flight;
 * batching while it flies gives the throughput.
 *
 * Backpressure: buffered plus in-flight records are bounded by `bufferBytesMax` and
 * `bufferRecordCountMax`; `await producer.append()` waits (in call order) until there is room.
 * The waiting appends themselves are bounded by `waitingAppendCountMax` (BUSY beyond).
 *
 * Failure: when a batch fails for good (a lasting error such as TOPIC_NOT_FOUND, or retries
 * exhausted), it and every later record reject with that error, and the producer refuses new
 * appends: what follows a gap is never appended behind the caller's back.
 */
import type { RetryPolicy } from './backoff.js';
import { errorFromResponse, WalrusApiError } from './errors.js';
import type { components } from './generated/api.js';
import { type AppendRecord, encodeRecord } from './values.js';

type AppendResult = components['schemas']['AppendResult'];
type Acks = components['schemas']['Acks'];

export interface ProducerOptions {
  /** The Producer-Id sent with every batch (default: a random `sdk-…`). */
  readonly producerId?: string;
  /** Sequence of the first batch (default 0); set it to continue an earlier producer's id. */
  readonly firstSeq?: number;
  /** How long the first buffered record waits for others to join its batch (default 5 ms). */
  readonly lingerMs?: number;
  /** Records per batch (default 1000, the gateway's limit per append). */
  readonly batchRecordCountMax?: number;
  /** JSON bytes of a batch's request body (default 1 MiB); one record alone may exceed it. */
  readonly batchBytesMax?: number;
  /** Buffered plus in-flight bytes before append() waits (default 8 MiB). */
  readonly bufferBytesMax?: number;
  /** Buffered plus in-flight records before append() waits (default 100,000). */
  readonly bufferRecordCountMax?: number;
  /** append() calls waiting for room at once; more are refused with BUSY (default 10,000). */
  readonly waitingAppendCountMax?: number;
  /** 'quorum' (default) or 'leader'. */
  readonly acks?: Acks;
  /** Retries of one batch (default 30 attempts, 100 ms .. 2 s apart: about half a minute). */
  readonly retry?: Partial<RetryPolicy>;
}

/** Where one record landed. */
export interface RecordAck {
  readonly offset: number;
  /** The sequence of the batch that carried it. */
  readonly producerSeq: number;
  /** True when the cluster had already appended its batch (a retry after a lost answer). */
  readonly duplicate: boolean;
}

/** What `await producer.append()` gives: the record is buffered; `ack()` waits until it is durable. */
export interface AppendTicket {
  ack(): Promise<RecordAck>;
}

export interface ProducerContext {
  readonly baseUrl: string;
  readonly headers: Readonly<Record<string, string>>;
  /** fetch with the client's bounded, advice-following retries (client.ts retryingFetch). */
  readonly retryingFetch: (policy: RetryPolicy) => (request: Request) => Promise<Response>;
}

export const producerDefaults = {
  lingerMs: 5,
  batchRecordCountMax: 1000,
  batchBytesMax: 1024 * 1024,
  bufferBytesMax: 8 * 1024 * 1024,
  bufferRecordCountMax: 100_000,
  waitingAppendCountMax: 10_000,
  retry: { attemptCountMax: 30, delayMsMin: 100, delayMsMax: 2_000 } satisfies RetryPolicy,
} as const;

interface Entry {
  readonly json: string;
  readonly bytes: number;
  readonly resolve: (ack: RecordAck) => void;
  readonly reject: (error: unknown) => void;
}

interface Waiter {
  readonly record: AppendRecord;
  readonly resolve: (ticket: AppendTicket) => void;
  readonly reject: (error: unknown) => void;
}

const utf8 = new TextEncoder();
/** `{"records":[` + `]}` */
const bodyFrameBytes = 14;

function randomProducerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `sdk-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new WalrusApiError('INVALID_CONFIG', 0, `${name} must be a positive integer, not ${value}`);
  return value;
}

export class Producer {
  readonly topic: string;
  readonly producerId: string;
  private nextSeq: number;
  private readonly lingerMs: number;
  private readonly batchRecordCountMax: number;
  private readonly batchBytesMax: number;
  private readonly bufferBytesMax: number;
  private readonly bufferRecordCountMax: number;
  private readonly waitingAppendCountMax: number;
  private readonly url: string;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly send: (request: Request) => Promise<Response>;

  /** Buffered records not yet sent, oldest first. */
  private queue: Entry[] = [];
  /** Bytes of the records in `queue`. */
  private queueBytes = 0;
  private queuedSinceMs = 0;
  private inFlight = false;
  /** Bytes and records buffered or in flight (the backpressure bounds apply to these). */
  private bufferedBytes = 0;
  private bufferedCount = 0;
  private readonly waiters: Waiter[] = [];
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** flush()/close() pending: send without lingering until everything is acknowledged. */
  private draining = false;
  private idle: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | undefined;
  private closed = false;
  private failed: WalrusApiError | undefined;

  constructor(ctx: ProducerContext, topic: string, options: ProducerOptions = {}) {
    this.topic = topic;
    this.producerId = options.producerId ?? randomProducerId();
    this.nextSeq = options.firstSeq ?? 0;
    if (!Number.isSafeInteger(this.nextSeq) || this.nextSeq < 0)
      throw new WalrusApiError('INVALID_CONFIG', 0, `firstSeq must be an integer >= 0, not ${this.nextSeq}`);
    const lingerMs = options.lingerMs ?? producerDefaults.lingerMs;
    if (!Number.isFinite(lingerMs) || lingerMs < 0)
      throw new WalrusApiError('INVALID_CONFIG', 0, `lingerMs must be >= 0, not ${lingerMs}`);
    this.lingerMs = lingerMs;
    this.batchRecordCountMax = positiveInteger(
      'batchRecordCountMax',
      options.batchRecordCountMax ?? producerDefaults.batchRecordCountMax,
    );
    this.batchBytesMax = positiveInteger(
      'batchBytesMax',
      options.batchBytesMax ?? producerDefaults.batchBytesMax,
    );
    this.bufferBytesMax = positiveInteger(
      'bufferBytesMax',
      options.bufferBytesMax ?? producerDefaults.bufferBytesMax,
    );
    this.bufferRecordCountMax = positiveInteger(
      'bufferRecordCountMax',
      options.bufferRecordCountMax ?? producerDefaults.bufferRecordCountMax,
    );
    this.waitingAppendCountMax = positiveInteger(
      'waitingAppendCountMax',
      options.waitingAppendCountMax ?? producerDefaults.waitingAppendCountMax,
    );
    if (this.batchBytesMax > this.bufferBytesMax || this.batchRecordCountMax > this.bufferRecordCountMax)
      throw new WalrusApiError(
        'INVALID_CONFIG',
        0,
        'a batch must fit in the buffer (batch limits <= buffer limits)',
      );
    const query = options.acks === undefined ? '' : `?acks=${encodeURIComponent(options.acks)}`;
    this.url = `${ctx.baseUrl.replace(/\/$/, '')}/v1/topics/${encodeURIComponent(topic)}/records${query}`;
    this.headers = { ...ctx.headers, 'content-type': 'application/json', 'producer-id': this.producerId };
    this.send = ctx.retryingFetch({ ...producerDefaults.retry, ...options.retry });
  }

  /** The sequence the next batch will carry. */
  get sequence(): number {
    return this.nextSeq;
  }

  /** The error that stopped the producer, if one did. */
  get failure(): WalrusApiError | undefined {
    return this.failed;
  }

  /** Records buffered or in flight, and their JSON bytes. */
  get buffered(): { readonly recordCount: number; readonly bytes: number } {
    return { recordCount: this.bufferedCount, bytes: this.bufferedBytes };
  }

  /**
   * Buffers one record, after waiting for room if the buffer is full. Resolves with a ticket whose
   * `ack()` resolves once the record is durable (or rejects with the error that stopped the batch).
   */
  append(record: AppendRecord): Promise<AppendTicket> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new WalrusApiError('BAD_REQUEST', 0, 'the producer is closed'));
    if (this.waiters.length === 0 && this.hasRoom()) return Promise.resolve(this.enqueue(record));
    if (this.waiters.length >= this.waitingAppendCountMax)
      return Promise.reject(
        new WalrusApiError('BUSY', 0, `more than ${this.waitingAppendCountMax} appends wait for room`),
      );
    return new Promise((resolve, reject) => this.waiters.push({ record, resolve, reject }));
  }

  /** Sends what is buffered now and resolves once everything appended so far is acknowledged. */
  flush(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.bufferedCount === 0 && this.waiters.length === 0) return Promise.resolve();
    if (this.idle === undefined) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.idle = { promise, resolve, reject };
    }
    this.draining = true;
    this.maybeSend();
    return this.idle.promise;
  }

  /** Refuses new appends, sends what is buffered and resolves once all of it is acknowledged. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private hasRoom(): boolean {
    // An empty buffer takes any one record, so that a record larger than the bound still goes.
    if (this.bufferedCount === 0) return true;
    return this.bufferedBytes < this.bufferBytesMax && this.bufferedCount < this.bufferRecordCountMax;
  }

  private enqueue(record: AppendRecord): AppendTicket {
    const json = JSON.stringify(encodeRecord(record));
    const bytes = utf8.encode(json).length + 1;
    let resolve!: (ack: RecordAck) => void;
    let reject!: (error: unknown) => void;
    const acked = new Promise<RecordAck>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that never asks for the ack must not see an unhandled rejection: flush() and
    // close() report the failure too.
    acked.catch(() => {});
    if (this.queue.length === 0) this.queuedSinceMs = Date.now();
    this.queue.push({ json, bytes, resolve, reject });
    this.queueBytes += bytes;
    this.bufferedBytes += bytes;
    this.bufferedCount += 1;
    this.maybeSend();
    return { ack: () => acked };
  }

  /** Admits waiting appends, in call order, while there is room. */
  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.hasRoom() && this.failed === undefined) {
      const waiter = this.waiters.shift()!;
      try {
        waiter.resolve(this.enqueue(waiter.record));
      } catch (error) {
        waiter.reject(error);
      }
    }
  }

  private batchIsFull(): boolean {
    return (
      this.queue.length >= this.batchRecordCountMax || bodyFrameBytes + this.queueBytes >= this.batchBytesMax
    );
  }

  private maybeSend(): void {
    if (this.inFlight || this.failed !== undefined || this.queue.length === 0) return;
    const waitedMs = Date.now() - this.queuedSinceMs;
    if (this.draining || waitedMs >= this.lingerMs || this.batchIsFull()) {
      if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      void this.sendBatch();
      return;
    }
    this.lingerTimer ??= setTimeout(() => {
      this.lingerTimer = undefined;
      this.maybeSend();
    }, this.lingerMs - waitedMs);
  }

  /** Takes the oldest records that fit one batch (at least one). */
  private takeBatch(): Entry[] {
    let count = 0;
    let bytes = bodyFrameBytes;
    while (count < this.queue.length && count < this.batchRecordCountMax) {
      const next = this.queue[count]!.bytes;
      if (count > 0 && bytes + next > this.batchBytesMax) break;
      bytes += next;
      count++;
    }
    const batch = this.queue.splice(0, count);
    this.queueBytes -= bytes - bodyFrameBytes;
    this.queuedSinceMs = Date.now();
    return batch;
  }

  private async sendBatch(): Promise<void> {
    this.inFlight = true;
    const batch = this.takeBatch();
    const seq = this.nextSeq;
    const body = `{"records":[${batch.map((e) => e.json).join(',')}]}`;
    let result: AppendResult;
    try {
      const res = await this.send(
        new Request(this.url, {
          method: 'POST',
          headers: { ...this.headers, 'producer-seq': String(seq) },
          body,
        }),
      );
      if (!res.ok) throw await errorFromResponse(res);
      result = (await res.json()) as AppendResult;
      if (result.count !== batch.length)
        throw new WalrusApiError(
          'INTERNAL',
          res.status,
          `sent ${batch.length} records, ${result.count} acknowledged`,
        );
    } catch (error) {
      const failure =
        error instanceof WalrusApiError
          ? error
          : new WalrusApiError(
              'OUTCOME_UNKNOWN',
              0,
              `the batch failed: ${String(error)}`,
              {},
              { cause: error },
            );
      this.fail(failure, batch);
      return;
    }
    this.nextSeq = seq + 1;
    this.inFlight = false;
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!;
      this.bufferedBytes -= entry.bytes;
      this.bufferedCount -= 1;
      entry.resolve({ offset: result.firstOffset + i, producerSeq: seq, duplicate: result.duplicate });
    }
    this.admitWaiters();
    if (this.bufferedCount === 0 && this.waiters.length === 0) {
      this.draining = false;
      const idle = this.idle;
      this.idle = undefined;
      idle?.resolve();
    }
    this.maybeSend();
  }

  /** Stops the producer: the failed batch, every later record and every waiting append reject. */
  private fail(error: WalrusApiError, batch: Entry[]): void {
    this.failed = error;
    this.inFlight = false;
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    for (const entry of [...batch, ...this.queue]) entry.reject(error);
    this.queue = [];
    this.queueBytes = 0;
    this.bufferedBytes = 0;
    this.bufferedCount = 0;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    const idle = this.idle;
    this.idle = undefined;
    if (idle !== undefined) {
      idle.promise.catch(() => {});
      idle.reject(error);
    }
  }
}
