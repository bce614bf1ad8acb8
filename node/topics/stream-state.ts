/**
 * Durable Streams on a topic: the `stream` op (create, get, delete, touch, producer state) and the
 * appender's check that a stream takes appends. What a DS stream has beyond a topic (path, content
 * type, TTL / expiry, fork source, closed, soft-deleted) lives in the metadata (StreamMeta), so
 * every gateway agrees and a gateway restart forgets nothing; producers' epochs live in the
 * segment leader's producer table (producers.ts) like any idempotent producer.
 *
 * Expiry: a stream past its expiry is gone for every operation at once; the node that notices
 * proposes its deletion (soft when forks still read from it), and the monitor's sweep
 * (`expireStreams`) removes those nobody touches.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { StreamAction, StreamInfo, StreamReply } from '../protocol/messages.js';
import {
  type StreamMeta,
  type TopicMeta,
  forksOf,
  streamExpiryMs,
  topicStartOffset,
} from '../metadata/metadata-state.js';
import { producerPosition } from './producers.js';
import type { Reader } from './reader.js';
import type { TopicAdmin } from './topic-admin.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';
import type { TopicRuntime } from './topic-table.js';

/** Limits of DS metadata (bytes of UTF-8). */
export const streamLimits = {
  pathSizeMaxBytes: 1024,
  contentTypeSizeMaxBytes: 256,
  /** A sliding TTL is renewed in the metadata at most this often per stream (bounds Raft traffic). */
  touchIntervalMsMax: 1000,
  /** Expired streams deleted per sweep of the monitor. */
  expireCountMaxPerSweep: 64,
} as const;

export function isExpired(stream: StreamMeta, nowMs: number): boolean {
  const at = streamExpiryMs(stream);
  return at !== null && nowMs >= at;
}

/** Throws unless the topic takes appends now (the appender calls it in the admission turn). */
export function checkStreamOpen(
  name: string,
  stream: StreamMeta | undefined,
  rt: TopicRuntime,
  nowMs: number,
): void {
  if (stream === undefined)
    throw new WalrusError(ErrorCode.BAD_REQUEST, `topic '${name}' is not a stream: it cannot be closed`);
  if (stream.softDeleted || isExpired(stream, nowMs))
    throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `stream '${stream.path}' does not exist`);
  if (stream.closed || rt.closing === true)
    throw new WalrusError(ErrorCode.STREAM_CLOSED, `stream '${stream.path}' is closed`);
}

function normalizeType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

export class StreamAdmin {
  private readonly ctx: TopicContext;
  private readonly admin: TopicAdmin;
  private readonly reader: Reader;

  constructor(ctx: TopicContext, admin: TopicAdmin, reader: Reader) {
    this.ctx = ctx;
    this.admin = admin;
    this.reader = reader;
  }

  async handle(name: string, action: StreamAction): Promise<StreamReply> {
    switch (action?.kind) {
      case 'create':
        return this.create(name, action);
      case 'get':
        return { stream: this.live(name) };
      case 'delete':
        return this.delete(name);
      case 'touch':
        return this.touch(name);
      case 'producer': {
        const info = this.live(name);
        const rt = this.ctx.table.find(name);
        if (typeof action.producerId !== 'string')
          throw new WalrusError(ErrorCode.BAD_REQUEST, 'producerId must be a string');
        return { stream: info, producer: rt === undefined ? null : producerPosition(rt, action.producerId) };
      }
      default:
        throw new WalrusError(ErrorCode.BAD_REQUEST, 'unknown stream action');
    }
  }

  private info(topic: TopicMeta, stream: StreamMeta): StreamInfo {
    return {
      topic: topic.name,
      path: stream.path,
      contentType: stream.contentType,
      ttlSeconds: stream.ttlSeconds,
      expiresAtMs: stream.expiresAtMs,
      forkOf: stream.forkOf,
      closed: stream.closed,
      softDeleted: stream.softDeleted,
      createdAtMs: topic.createdAtMs,
      startOffset: topicStartOffset(topic),
      endOffset: this.reader.knownEnd(topic),
    };
  }

  /** The stream as clients see it: null when absent or expired (an expired one is deleted). */
  private live(name: string): StreamInfo | null {
    const topic = this.ctx.meta.state.topics.get(name);
    const stream = topic?.stream;
    if (topic === undefined || stream === undefined) return null;
    if (isExpired(stream, this.ctx.nowMs())) {
      if (!stream.softDeleted) void this.expire(name).catch(() => {});
      return null;
    }
    return this.info(topic, stream);
  }

  /** Deletes an expired stream (soft when forks read from it). */
  async expire(name: string): Promise<void> {
    const stream = this.ctx.meta.state.topics.get(name)?.stream;
    if (stream === undefined || stream.softDeleted) return;
    if (forksOf(this.ctx.meta.state, name).length > 0)
      await proposeOrThrow(this.ctx, { type: 'softDeleteStream', topic: name });
    else await this.admin.delete(name);
  }

  /** The monitor's sweep (Raft leader): deletes streams past their expiry, a bounded number per call. */
  async expireStreams(): Promise<number> {
    const now = this.ctx.nowMs();
    const due: string[] = [];
    for (const t of this.ctx.meta.state.topics.values()) {
      if (t.stream !== undefined && !t.stream.softDeleted && isExpired(t.stream, now)) due.push(t.name);
      if (due.length >= streamLimits.expireCountMaxPerSweep) break;
    }
    for (const name of due) await this.expire(name);
    return due.length;
  }

  private async create(
    name: string,
    action: Extract<StreamAction, { kind: 'create' }>,
  ): Promise<StreamReply> {
    const settings = this.validate(action);
    const existing = this.ctx.meta.state.topics.get(name);
    if (existing !== undefined) {
      const stream = existing.stream;
      if (stream === undefined)
        throw new WalrusError(ErrorCode.TOPIC_EXISTS, `topic '${name}' exists and is not a stream`);
      if (stream.path !== settings.path)
        throw new WalrusError(ErrorCode.CONFLICT, `topic '${name}' holds another stream path`);
      if (stream.softDeleted)
        throw new WalrusError(
          ErrorCode.STREAM_GONE,
          `stream '${stream.path}' was deleted and forks still read from it: its path cannot be reused yet`,
        );
      if (isExpired(stream, this.ctx.nowMs())) {
        await this.expire(name);
        return this.create(name, action);
      }
      const same =
        normalizeType(stream.contentType) === normalizeType(settings.contentType) &&
        stream.ttlSeconds === settings.ttlSeconds &&
        stream.expiresAtMs === settings.expiresAtMs &&
        stream.closed === (action.closed === true) &&
        (stream.forkOf?.topic ?? null) === (settings.forkOf?.topic ?? null) &&
        (stream.forkOf?.offset ?? null) === (settings.forkOf?.offset ?? null) &&
        (stream.forkOf?.subOffset ?? 0) === (settings.forkOf?.subOffset ?? 0);
      if (!same)
        throw new WalrusError(ErrorCode.TOPIC_EXISTS, `stream '${settings.path}' exists with other settings`);
      return { stream: this.info(existing, stream), created: false };
    }
    if (settings.forkOf !== null) {
      const source = this.ctx.meta.state.topics.get(settings.forkOf.topic)?.stream;
      if (source === undefined || isExpired(source, this.ctx.nowMs()))
        throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, 'the fork source stream does not exist');
      if (source.softDeleted)
        throw new WalrusError(ErrorCode.STREAM_GONE, 'the fork source stream was deleted');
    }
    await this.admin.create(name, undefined, undefined, settings);
    const topic = this.ctx.table.topic(name);
    return { stream: this.info(topic, topic.stream!), created: true };
  }

  private validate(
    action: Extract<StreamAction, { kind: 'create' }>,
  ): Omit<StreamMeta, 'accessedAtMs' | 'softDeleted'> {
    const bad = (what: string): never => {
      throw new WalrusError(ErrorCode.BAD_REQUEST, what);
    };
    const { path, contentType, ttlSeconds, expiresAtMs, forkOf } = action;
    if (typeof path !== 'string' || path.length === 0) bad('stream path must be a non-empty string');
    if (Buffer.byteLength(path, 'utf8') > streamLimits.pathSizeMaxBytes)
      bad(`stream path is above ${streamLimits.pathSizeMaxBytes} bytes`);
    if (
      typeof contentType !== 'string' ||
      Buffer.byteLength(contentType) > streamLimits.contentTypeSizeMaxBytes
    )
      bad('stream content type must be a string of at most 256 bytes');
    for (const [key, v] of [
      ['ttlSeconds', ttlSeconds],
      ['expiresAtMs', expiresAtMs],
    ] as const)
      if (v !== null && (!Number.isSafeInteger(v) || v < 0))
        bad(`${key} must be a non-negative integer or null`);
    if (
      forkOf !== null &&
      (typeof forkOf?.topic !== 'string' ||
        !Number.isSafeInteger(forkOf.offset) ||
        forkOf.offset < 0 ||
        (forkOf.subOffset !== undefined && (!Number.isSafeInteger(forkOf.subOffset) || forkOf.subOffset < 0)))
    )
      bad('forkOf must be null or { topic, offset }');
    return {
      path,
      contentType,
      ttlSeconds,
      expiresAtMs,
      forkOf:
        forkOf === null
          ? null
          : {
              topic: forkOf.topic,
              offset: forkOf.offset,
              ...(forkOf.subOffset ? { subOffset: forkOf.subOffset } : {}),
            },
      closed: action.closed === true,
    };
  }

  private async delete(name: string): Promise<StreamReply> {
    const topic = this.ctx.meta.state.topics.get(name);
    const stream = topic?.stream;
    if (topic === undefined || stream === undefined) return { stream: null };
    if (stream.softDeleted)
      throw new WalrusError(ErrorCode.STREAM_GONE, `stream '${stream.path}' was deleted`);
    const info = this.live(name);
    if (info === null) return { stream: null };
    if (forksOf(this.ctx.meta.state, name).length > 0)
      await proposeOrThrow(this.ctx, { type: 'softDeleteStream', topic: name });
    else await this.admin.delete(name);
    return { stream: info };
  }

  private async touch(name: string): Promise<StreamReply> {
    const info = this.live(name);
    const stream = this.ctx.meta.state.topics.get(name)?.stream;
    if (info === null || stream === undefined || stream.ttlSeconds === null) return { stream: info };
    const now = this.ctx.nowMs();
    const intervalMs = Math.min(streamLimits.touchIntervalMsMax, stream.ttlSeconds * 100);
    if (now - stream.accessedAtMs >= intervalMs)
      await proposeOrThrow(this.ctx, { type: 'touchStream', topic: name, atMs: now });
    return { stream: info };
  }
}
