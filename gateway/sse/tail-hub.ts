/**
 * SSE fan-out: one shared upstream reader per topic per gateway, feeding every subscriber of that
 * topic from one long-poll `read` loop. A new subscriber first catches up on its own (reads without
 * waiting, paced by its own buffer) and joins the shared feed once it has reached the feed's
 * position, so one topic costs one upstream long poll however many tails it has.
 *
 * Bounds: subscribers per gateway, topics with a feed, bytes queued per subscriber (a live
 * subscriber over the bound is sent a `problem` event with its resume offset and closed; a
 * catching-up one waits for its queue to drain before it reads more), consecutive failed upstream
 * reads. Heartbeat comments go to every subscriber from one timer.
 *
 * Invariant: a subscriber's `nextOffset` is the offset after the last record event queued to it;
 * every record is queued at most once per subscriber and in offset order.
 */
import assert from 'node:assert';
import { Buffer } from 'node:buffer';
import { setMaxListeners } from 'node:events';
import { ErrorCode, errorCodeInfo, WalrusError } from '../../node/protocol/error-codes.js';
import type { StoredRecord } from '../../node/protocol/messages.js';
import {
  sseBufferBytesMax,
  sseCatchUpPauseBytes,
  sseHeartbeatIntervalMs,
  sseLiveReadWaitMs,
  sseReadByteCountMax,
  sseReadFailureCountMax,
  sseReadRecordCountMax,
  sseRetryDelayMsMax,
  sseRetryDelayMsMin,
  sseSubscriberCountMax,
  sseTopicCountMax,
  upstreamTimeoutMs,
} from '../limits.js';
import type { GatewayMetrics } from '../metrics.js';
import { problemOf } from '../middleware/problem.js';
import { recordEvent } from '../records-json.js';
import type { Upstream } from '../upstream.js';
import type { SseSink } from './sink.js';

const heartbeatChunk = Buffer.from(': hb\n\n');

/**
 * How a subscriber's events are written when not in the shared single-topic form: a multi-topic
 * tail (multi-tail.ts) names the topic in each event and puts every topic's position in `id:`.
 */
export interface EventFormat {
  /** The event text of `records` (all at or after the subscriber's position, in order). */
  events(topic: string, records: readonly StoredRecord[]): string;
  /** Problem extension members that tell the client where to resume. */
  resume(): Record<string, unknown>;
}

interface Subscriber {
  readonly topic: string;
  readonly sink: SseSink;
  readonly format: EventFormat | undefined;
  nextOffset: number;
  live: boolean;
  done: boolean;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function backoffMs(failures: number): number {
  return Math.min(sseRetryDelayMsMax, sseRetryDelayMsMin * 2 ** Math.min(failures, 16));
}

function asWalrusError(error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  return new WalrusError(ErrorCode.UNAVAILABLE, 'the cluster could not be reached', { cause: error });
}

export interface TailHubOptions {
  readonly heartbeatIntervalMs?: number;
  readonly subscriberCountMax?: number;
  readonly bufferBytesMax?: number;
  readonly liveReadWaitMs?: number;
}

export class TailHub {
  private readonly feeds = new Map<string, TopicFeed>();
  private subscriberCount = 0;
  private draining = false;
  private readonly heartbeatTimer: NodeJS.Timeout;
  readonly subscriberCountMax: number;
  readonly bufferBytesMax: number;
  readonly liveReadWaitMs: number;

  constructor(
    readonly upstream: Upstream,
    readonly metrics: GatewayMetrics,
    readonly log: (message: string, fields?: object) => void,
    options: TailHubOptions = {},
  ) {
    this.subscriberCountMax = options.subscriberCountMax ?? sseSubscriberCountMax;
    this.bufferBytesMax = options.bufferBytesMax ?? sseBufferBytesMax;
    this.liveReadWaitMs = options.liveReadWaitMs ?? sseLiveReadWaitMs;
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? sseHeartbeatIntervalMs;
    assert(heartbeatIntervalMs > 0 && heartbeatIntervalMs <= 15_000);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), heartbeatIntervalMs);
    this.heartbeatTimer.unref();
  }

  get size(): number {
    return this.subscriberCount;
  }

  get feedCount(): number {
    return this.feeds.size;
  }

  /** Refuses (throws BUSY/UNAVAILABLE) before any byte is written, so the caller can answer problem+json. */
  admit(topic: string): void {
    if (this.draining) throw new WalrusError(ErrorCode.UNAVAILABLE, 'the gateway is shutting down');
    if (this.subscriberCount >= this.subscriberCountMax) {
      throw new WalrusError(ErrorCode.BUSY, `this gateway holds ${this.subscriberCountMax} tails already`);
    }
    if (!this.feeds.has(topic) && this.feeds.size >= sseTopicCountMax) {
      throw new WalrusError(ErrorCode.BUSY, `this gateway tails ${sseTopicCountMax} topics already`);
    }
  }

  /** admit() for a tail of several topics at once: each holds a place among the tails. */
  admitAll(topics: readonly string[]): void {
    for (const topic of topics) this.admit(topic);
    if (this.subscriberCount + topics.length > this.subscriberCountMax) {
      throw new WalrusError(ErrorCode.BUSY, `this gateway holds ${this.subscriberCountMax} tails already`);
    }
    const newFeeds = topics.filter((t) => !this.feeds.has(t)).length;
    if (this.feeds.size + newFeeds > sseTopicCountMax) {
      throw new WalrusError(ErrorCode.BUSY, `this gateway tails ${sseTopicCountMax} topics already`);
    }
  }

  /** Starts tailing `topic` from `fromOffset` into `sink`. Call admit() first. */
  subscribe(topic: string, fromOffset: number, sink: SseSink, format?: EventFormat): void {
    this.admit(topic);
    let feed = this.feeds.get(topic);
    if (feed === undefined) {
      feed = new TopicFeed(this, topic);
      this.feeds.set(topic, feed);
      this.metrics.sseFeeds.set(this.feeds.size);
    }
    const sub: Subscriber = { topic, sink, format, nextOffset: fromOffset, live: false, done: false };
    this.subscriberCount++;
    this.metrics.sseConnections.set(this.subscriberCount);
    const owner = feed;
    sink.onClose(() => this.forget(owner, sub));
    owner.add(sub);
  }

  /** Sends a problem event carrying the resume offset, then closes the subscriber. */
  closeWithProblem(sub: Subscriber, code: ErrorCode, detail: string): void {
    if (sub.done) return;
    const problem = problemOf(
      code,
      detail,
      undefined,
      sub.format === undefined ? { resumeOffset: sub.nextOffset } : sub.format.resume(),
    );
    sub.sink.write(Buffer.from(`event: problem\ndata: ${JSON.stringify(problem)}\n\n`));
    sub.sink.end();
    this.forget(this.feeds.get(sub.topic), sub);
  }

  /** Graceful shutdown: every tail gets a resumable UNAVAILABLE event and is closed. */
  drain(): void {
    this.draining = true;
    for (const feed of [...this.feeds.values()]) {
      for (const sub of [...feed.subscribers]) {
        this.closeWithProblem(
          sub,
          ErrorCode.UNAVAILABLE,
          'the gateway is shutting down; reconnect to resume',
        );
      }
    }
  }

  close(): void {
    clearInterval(this.heartbeatTimer);
    this.drain();
  }

  dropFeed(feed: TopicFeed): void {
    if (this.feeds.get(feed.topic) === feed) this.feeds.delete(feed.topic);
    this.metrics.sseFeeds.set(this.feeds.size);
  }

  private forget(feed: TopicFeed | undefined, sub: Subscriber): void {
    if (sub.done) return;
    sub.done = true;
    this.subscriberCount--;
    this.metrics.sseConnections.set(this.subscriberCount);
    feed?.remove(sub);
  }

  private heartbeat(): void {
    for (const feed of this.feeds.values()) {
      for (const sub of feed.subscribers) {
        sub.sink.write(heartbeatChunk);
        // Catching-up tails pace themselves (they wait for their queue to drain before reading).
        if (sub.live) this.checkSlow(sub);
      }
    }
  }

  /** Closes a subscriber whose queue is over the bound; true if it did. */
  checkSlow(sub: Subscriber): boolean {
    if (sub.sink.queuedBytes() <= this.bufferBytesMax) return false;
    this.metrics.sseSlowDisconnects.inc();
    this.closeWithProblem(
      sub,
      ErrorCode.BUSY,
      'the client reads too slowly; reconnect with Last-Event-ID to resume',
    );
    return true;
  }
}

class TopicFeed {
  readonly subscribers = new Set<Subscriber>();
  private readonly live = new Set<Subscriber>();
  /** Offset the shared reader asks for next; null until the first subscriber catches up. */
  private liveNextOffset: number | null = null;
  private stopped = false;
  private readonly abort = new AbortController();
  /** Catch-up is paced by its own queue: read a slice of the bound, pause while a quarter is queued. */
  private readonly catchUpReadBytes: number;
  private readonly catchUpPauseBytes: number;

  constructor(
    private readonly hub: TailHub,
    readonly topic: string,
  ) {
    this.catchUpReadBytes = Math.max(1, Math.min(sseReadByteCountMax, Math.floor(hub.bufferBytesMax / 4)));
    this.catchUpPauseBytes = Math.min(sseCatchUpPauseBytes, Math.floor(hub.bufferBytesMax / 4));
    // Every read of this feed (one live reader plus one catch-up per subscriber) listens on this
    // one signal: the bound is the subscriber limit, not Node's default warning threshold of 10.
    setMaxListeners(hub.subscriberCountMax + 8, this.abort.signal);
  }

  add(sub: Subscriber): void {
    this.subscribers.add(sub);
    void this.catchUp(sub);
  }

  remove(sub: Subscriber): void {
    this.subscribers.delete(sub);
    this.live.delete(sub);
    if (this.subscribers.size === 0) {
      this.stopped = true;
      this.abort.abort();
      this.hub.dropFeed(this);
    }
  }

  private async catchUp(sub: Subscriber): Promise<void> {
    let failures = 0;
    while (!sub.done && !this.stopped) {
      if (this.liveNextOffset !== null && sub.nextOffset >= this.liveNextOffset) {
        sub.live = true;
        this.live.add(sub);
        return;
      }
      if (sub.sink.queuedBytes() > this.catchUpPauseBytes) {
        await sub.sink.waitForDrain();
        continue;
      }
      let reply: Awaited<ReturnType<typeof this.read>>;
      try {
        reply = await this.read(sub.nextOffset, 0, this.catchUpReadBytes);
      } catch (error) {
        if (sub.done || this.stopped) return;
        const e = asWalrusError(error);
        failures++;
        if (!e.retryable || failures >= sseReadFailureCountMax) {
          this.hub.closeWithProblem(sub, e.code, e.message);
          return;
        }
        await delay(backoffMs(failures));
        continue;
      }
      failures = 0;
      if (sub.done || this.stopped) return;
      if (reply.records.length > 0) {
        this.deliver(sub, reply.records);
        continue;
      }
      sub.nextOffset = Math.max(sub.nextOffset, reply.nextOffset);
      if (this.liveNextOffset === null) {
        this.liveNextOffset = sub.nextOffset;
        sub.live = true;
        this.live.add(sub);
        void this.runLive();
        return;
      }
      if (sub.nextOffset < this.liveNextOffset) await delay(sseRetryDelayMsMin);
    }
  }

  private async runLive(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const offset = this.liveNextOffset;
      assert(offset !== null);
      let reply: Awaited<ReturnType<typeof this.read>>;
      try {
        reply = await this.read(offset, this.hub.liveReadWaitMs);
      } catch (error) {
        if (this.stopped) return;
        const e = asWalrusError(error);
        failures++;
        this.hub.metrics.upstreamRetries.inc({ op: 'read' });
        if (!errorCodeInfo[e.code].retryable || failures >= sseReadFailureCountMax) {
          this.hub.log('sse feed failed', { topic: this.topic, code: e.code, detail: e.message });
          for (const sub of [...this.subscribers]) this.hub.closeWithProblem(sub, e.code, e.message);
          return;
        }
        await delay(backoffMs(failures));
        continue;
      }
      failures = 0;
      if (this.stopped) return;
      if (reply.records.length > 0) this.broadcast(reply.records);
      this.liveNextOffset = Math.max(offset, reply.nextOffset);
    }
  }

  private read(offset: number, waitMs: number, byteCountMax = sseReadByteCountMax) {
    return this.hub.upstream.request(
      {
        op: 'read',
        topic: this.topic,
        offset,
        recordCountMax: sseReadRecordCountMax,
        byteCountMax,
        waitMs,
      },
      { signal: this.abort.signal, timeoutMs: waitMs + upstreamTimeoutMs },
    );
  }

  /** Queues records a catching-up subscriber has not seen yet. */
  private deliver(sub: Subscriber, records: readonly StoredRecord[]): void {
    let text = '';
    if (sub.format !== undefined) {
      text = sub.format.events(
        this.topic,
        records.filter((r) => r.offset >= sub.nextOffset),
      );
    } else for (const record of records) if (record.offset >= sub.nextOffset) text += recordEvent(record);
    if (text.length > 0) sub.sink.write(Buffer.from(text));
    const last = records[records.length - 1]!;
    sub.nextOffset = Math.max(sub.nextOffset, last.offset + 1);
    this.hub.metrics.sseEvents.inc(records.length);
  }

  /** One encoding of the batch, shared by every live subscriber at the feed's position. */
  private broadcast(records: readonly StoredRecord[]): void {
    const events = records.map(recordEvent);
    const first = records[0]!.offset;
    const end = records[records.length - 1]!.offset + 1;
    let all: Buffer | undefined;
    let delivered = 0;
    for (const sub of [...this.live]) {
      if (sub.done) continue;
      if (sub.format !== undefined) {
        if (sub.nextOffset < end) {
          const rest = records.slice(Math.max(0, sub.nextOffset - first));
          sub.sink.write(Buffer.from(sub.format.events(this.topic, rest)));
          delivered += rest.length;
        }
      } else if (sub.nextOffset <= first) {
        all ??= Buffer.from(events.join(''));
        sub.sink.write(all);
        delivered += events.length;
      } else if (sub.nextOffset < end) {
        const rest = events.slice(sub.nextOffset - first);
        sub.sink.write(Buffer.from(rest.join('')));
        delivered += rest.length;
      }
      sub.nextOffset = Math.max(sub.nextOffset, end);
      this.hub.checkSlow(sub);
    }
    this.hub.metrics.sseEvents.inc(delivered);
  }
}
