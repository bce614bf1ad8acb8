/**
 * The DS view of the cluster: streams by path, over the node's `stream` op and plain topic
 * appends and reads. Holds nothing between requests (every answer comes from the nodes), so any
 * number of gateways agree. Reads are in stream positions: a fork's positions below its fork point
 * are read from its source (recursively, at most dsLimits.forkDepthMax sources).
 */
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { RecordInput, StreamAction, StreamInfo } from '../../node/protocol/messages.js';
import type { Upstream } from '../upstream.js';
import { topicOfStream } from './path-map.js';
import { dsLimits } from './protocol.js';

/** A stream as the routes use it: the node's info plus its positions. */
export interface DsStream extends StreamInfo {
  /** Position of the stream's first own record (the fork point; 0 for a plain stream). */
  readonly basePosition: number;
  /** Position after the last record (the tail). */
  readonly tailPosition: number;
}

export interface DsRead {
  readonly values: Uint8Array[];
  /** Position after the last value returned. */
  readonly nextPosition: number;
}

function withPositions(info: StreamInfo): DsStream {
  const basePosition = info.forkOf?.offset ?? 0;
  return { ...info, basePosition, tailPosition: basePosition + info.endOffset };
}

export class DsStore {
  private readonly upstream: Upstream;

  constructor(upstream: Upstream) {
    this.upstream = upstream;
  }

  private async action(topic: string, action: StreamAction) {
    return this.upstream.request({ op: 'stream', topic, action });
  }

  /** The stream at `path` (soft-deleted ones included), or null. */
  async get(path: string): Promise<DsStream | null> {
    return this.getTopic(topicOfStream(path));
  }

  async getTopic(topic: string): Promise<DsStream | null> {
    try {
      const { stream } = await this.action(topic, { kind: 'get' });
      return stream === null ? null : withPositions(stream);
    } catch (error) {
      if ((error as WalrusError).code === ErrorCode.TOPIC_NOT_FOUND) return null;
      throw error;
    }
  }

  async create(
    action: Extract<StreamAction, { kind: 'create' }>,
  ): Promise<{ stream: DsStream; created: boolean }> {
    const reply = await this.action(topicOfStream(action.path), action);
    if (reply.stream === null) throw new WalrusError(ErrorCode.INTERNAL, 'the node created no stream');
    return { stream: withPositions(reply.stream), created: reply.created === true };
  }

  async delete(path: string): Promise<boolean> {
    return (await this.action(topicOfStream(path), { kind: 'delete' })).stream !== null;
  }

  async touch(stream: DsStream): Promise<void> {
    if (stream.ttlSeconds !== null) await this.action(stream.topic, { kind: 'touch' });
  }

  async producer(stream: DsStream, producerId: string): Promise<{ epoch: number; seq: number } | null> {
    return (await this.action(stream.topic, { kind: 'producer', producerId })).producer ?? null;
  }

  async append(
    stream: DsStream,
    records: readonly RecordInput[],
    options: {
      producerId?: string;
      producerEpoch?: number;
      producerSeq?: number;
      close?: boolean;
      streamSeq?: string;
    },
  ) {
    return this.upstream.request({
      op: 'append',
      topic: stream.topic,
      records,
      ...(options.producerId === undefined
        ? {}
        : {
            producerId: options.producerId,
            producerEpoch: options.producerEpoch!,
            producerSeq: options.producerSeq!,
          }),
      ...(options.close === true ? { close: true } : {}),
      ...(options.streamSeq === undefined ? {} : { streamSeq: options.streamSeq }),
    });
  }

  /**
   * Values from `position` up to the read limits; `waitMs` > 0 long-polls the stream's own topic
   * when the position is its tail.
   */
  async read(stream: DsStream, position: number, waitMs = 0, signal?: AbortSignal): Promise<DsRead> {
    return this.readCapped(stream, position, Number.MAX_SAFE_INTEGER, waitMs, 0, signal);
  }

  private async readCapped(
    stream: DsStream,
    position: number,
    capPosition: number,
    waitMs: number,
    depth: number,
    signal?: AbortSignal,
  ): Promise<DsRead> {
    if (position < stream.basePosition && stream.forkOf !== null) {
      if (depth >= dsLimits.forkDepthMax)
        throw new WalrusError(ErrorCode.BAD_REQUEST, `fork chain deeper than ${dsLimits.forkDepthMax}`);
      const source = await this.getTopic(stream.forkOf.topic);
      const inherited =
        source === null
          ? { values: [], nextPosition: stream.basePosition }
          : await this.readCapped(
              source,
              position,
              Math.min(capPosition, stream.basePosition),
              0,
              depth + 1,
              signal,
            );
      // Short of the fork point (a page limit): what the source gave is the answer for now.
      if (
        inherited.nextPosition < stream.basePosition ||
        inherited.values.length >= dsLimits.readRecordCountMax
      )
        return inherited;
      const ownWaitMs = inherited.values.length > 0 ? 0 : waitMs;
      const own = await this.readCapped(stream, stream.basePosition, capPosition, ownWaitMs, depth, signal);
      return { values: [...inherited.values, ...own.values], nextPosition: own.nextPosition };
    }
    const own = Math.max(0, position - stream.basePosition);
    const countMax = Math.min(dsLimits.readRecordCountMax, capPosition - stream.basePosition - own);
    if (countMax <= 0) return { values: [], nextPosition: position };
    const reply = await this.upstream.request(
      {
        op: 'read',
        topic: stream.topic,
        offset: own,
        recordCountMax: countMax,
        byteCountMax: dsLimits.readBytesMax,
        waitMs,
      },
      signal === undefined ? {} : { signal },
    );
    return {
      values: reply.records.map((r) => r.value),
      nextPosition: stream.basePosition + own + reply.records.length,
    };
  }
}
