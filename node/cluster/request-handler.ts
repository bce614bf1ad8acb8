/**
 * Maps frames on the client port to the broker: binary requests by op, Walrus text commands by
 * keyword. Every received frame gets exactly one reply frame; every failure becomes a typed reply
 * (binary error with code, or `ERR <CODE> <message>`), never a crash. Long polls are cancelled when
 * their connection closes.
 */
import { decodeRequest, encodeErrorReply, encodeReply } from '../protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { isBinaryFrame } from '../protocol/frame.js';
import type { Request, RequestOp, ResponseByOp } from '../protocol/messages.js';
import {
  encodeTextError,
  encodeTextReply,
  parseTextCommand,
  type TextCommand,
} from '../protocol/text-codec.js';
import { type Broker, type BrokerLogger, sharedConsumerName, toWalrusError } from './broker.js';

/** What a connection looks like to the handler (the transport's FrameConnection fits). */
export interface ReplyChannel {
  readonly id: number;
  send(payload: Uint8Array): void;
  close(): void;
  readonly closed: boolean;
}

export interface RequestHandlerOptions {
  readonly broker: Broker;
  readonly nodeId: number;
  readonly clientAddr: string;
  /** Builds seed 002's METRICS JSON. */
  readonly metricsJson: () => Record<string, unknown>;
  readonly logger: BrokerLogger;
}

export const requestHandlerLimits = {
  /** Bytes one GET / consumer read may return at most. */
  readByteCountMax: 4 * 1024 * 1024,
} as const;

export class RequestHandler {
  private readonly options: RequestHandlerOptions;
  private readonly broker: Broker;
  /** Abort controllers of long polls, per connection id, so a closed connection frees its waiters. */
  private readonly polls = new Map<number, Set<AbortController>>();
  /** Text replies must go back in command order; binary ones may not. */
  private readonly textQueues = new Map<number, Promise<void>>();

  constructor(options: RequestHandlerOptions) {
    this.options = options;
    this.broker = options.broker;
  }

  onFrame(conn: ReplyChannel, payload: Buffer): void {
    if (isBinaryFrame(payload)) this.onBinary(conn, payload);
    else this.onText(conn, payload);
  }

  onClose(conn: ReplyChannel): void {
    for (const controller of this.polls.get(conn.id) ?? []) controller.abort();
    this.polls.delete(conn.id);
    this.textQueues.delete(conn.id);
  }

  private onBinary(conn: ReplyChannel, payload: Buffer): void {
    const decoded = decodeRequest(payload);
    if (decoded.kind === 'malformed') {
      if (decoded.requestId !== undefined) {
        conn.send(encodeErrorReply(decoded.requestId, decoded.error, decoded.opcode));
      } else {
        conn.send(encodeTextError(decoded.error));
        conn.close();
      }
      return;
    }
    const { requestId, request } = decoded;
    this.dispatch(conn, request).then(
      (reply) => {
        try {
          conn.send(encodeReply(requestId, request.op, reply as ResponseByOp[typeof request.op]));
        } catch (error) {
          conn.send(encodeErrorReply(requestId, toWalrusError(error), request.op));
        }
      },
      (error: unknown) => {
        const err = toWalrusError(error);
        if (err.code === ErrorCode.INTERNAL)
          this.options.logger.error({ err: String(error), op: request.op }, 'request failed');
        conn.send(encodeErrorReply(requestId, err, request.op));
      },
    );
  }

  private async dispatch(conn: ReplyChannel, request: Request): Promise<ResponseByOp[RequestOp]> {
    const b = this.broker;
    switch (request.op) {
      case 'ping':
        return { nodeId: this.options.nodeId };
      case 'createTopic':
        return b.createTopic(request.topic, request.retention);
      case 'describeTopic':
        return { topic: b.describeTopic(request.topic) };
      case 'listTopics':
        return { topics: b.listTopics() };
      case 'deleteTopic':
        return { deleted: await b.deleteTopic(request.topic) };
      case 'configureTopic':
        return { topic: await b.configureTopic(request.topic, request.retention) };
      case 'append': {
        const options: { producerId?: string; producerSeq?: number; expectedOffset?: number } = {};
        if (request.producerId !== undefined) options.producerId = request.producerId;
        if (request.producerSeq !== undefined) options.producerSeq = request.producerSeq;
        if (request.expectedOffset !== undefined) options.expectedOffset = request.expectedOffset;
        return b.append(request.topic, request.records, options);
      }
      case 'read':
        return this.longPoll(conn, (signal) =>
          b.read(
            request.topic,
            request.offset,
            {
              recordCountMax: request.recordCountMax,
              byteCountMax: request.byteCountMax,
              waitMs: request.waitMs,
            },
            signal,
          ),
        );
      case 'offsetForTimestamp':
        return { offset: b.offsetForTimestamp(request.topic, request.timestampMs) };
      case 'consumerReadNext':
        return b.consumerReadNext(request.topic, request.consumer, {
          recordCountMax: request.recordCountMax,
          byteCountMax: request.byteCountMax,
          autoCommit: request.autoCommit,
        });
      case 'consumerCommit':
        return b.consumerCommit(request.topic, request.consumer, request.offset);
      case 'consumerGet':
        return b.consumerGet(request.topic, request.consumer);
      case 'metrics':
        return { metrics: this.options.metricsJson() };
      case 'state':
        return { state: b.stateJson(request.topic) };
    }
  }

  private async longPoll<T>(conn: ReplyChannel, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    let set = this.polls.get(conn.id);
    if (set === undefined) {
      set = new Set();
      this.polls.set(conn.id, set);
    }
    set.add(controller);
    try {
      return await run(controller.signal);
    } finally {
      set.delete(controller);
    }
  }

  private onText(conn: ReplyChannel, payload: Buffer): void {
    const parsed = parseTextCommand(payload);
    // The text protocol has no request ids: commands run one after another per connection, as a
    // Walrus user pipelining REGISTER then PUT expects, and replies leave in command order.
    const before = this.textQueues.get(conn.id) ?? Promise.resolve();
    const next = before.then(async () => {
      const reply = parsed.ok
        ? await this.text(parsed.command).catch((error: unknown) => encodeTextError(toWalrusError(error)))
        : encodeTextError(parsed.error);
      conn.send(reply);
    });
    this.textQueues.set(conn.id, next);
    void next.then(() => {
      if (this.textQueues.get(conn.id) === next) this.textQueues.delete(conn.id);
    });
  }

  private async text(command: TextCommand): Promise<Buffer> {
    const b = this.broker;
    switch (command.kind) {
      case 'REGISTER':
        await b.createTopic(command.topic);
        return encodeTextReply({ kind: 'OK' });
      case 'PUT':
        await b.append(command.topic, [{ value: command.value }]);
        return encodeTextReply({ kind: 'OK' });
      case 'GET': {
        const { records } = await b.consumerReadNext(command.topic, sharedConsumerName, {
          recordCountMax: 1,
          byteCountMax: requestHandlerLimits.readByteCountMax,
          autoCommit: true,
        });
        const record = records[0];
        return record === undefined
          ? encodeTextReply({ kind: 'EMPTY' })
          : encodeTextReply({ kind: 'OK', payload: record.value });
      }
      case 'STATE':
        return encodeTextReply({ kind: 'OK', payload: JSON.stringify(b.stateJson(command.topic)) });
      case 'METRICS':
        return encodeTextReply({ kind: 'OK', payload: JSON.stringify(this.options.metricsJson()) });
      default:
        throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, 'unknown command');
    }
  }
}
