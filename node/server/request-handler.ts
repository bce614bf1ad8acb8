/**
 * Maps frames on the client port to the broker: binary requests by op, Walrus text commands by
 * keyword. Every received frame gets exactly one reply frame; every failure becomes a typed reply
 * (binary error with code, or `ERR <CODE> <message>`), never a crash. Long polls are cancelled when
 * their connection closes.
 */
import {
  decodeReply,
  decodeRequest,
  encodeAppendReply,
  encodeErrorReply,
  encodeReply,
} from '../protocol/binary-codec.js';
import { BinaryFlag, binaryHeaderSizeBytes, binaryRequestIdOffset } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { protocolLimits } from '../protocol/limits.js';
import { frameServerDefaults } from '../transport/frame-server.js';
import { isBinaryFrame } from '../protocol/frame.js';
import type { Request, RequestOp, ResponseByOp } from '../protocol/messages.js';
import {
  encodeTextError,
  encodeTextReply,
  parseTextCommand,
  type TextCommand,
} from '../protocol/text-codec.js';
import type { Logger } from '../log.js';
import { sharedConsumerName } from '../topics/consumers.js';
import { readerLimits } from '../topics/reader.js';
import type { ClusterView } from '../topics/ports.js';
import { toWalrusError } from '../topics/topic-table.js';
import type { TopicService } from '../topics/topic-service.js';
import type { Controller } from '../controller/controller.js';
import { transferLeader } from './leader-transfer.js';
import { AppendJoin, type JoinMember, isJoinable } from './append-join.js';
import { ClientAuth } from './client-auth.js';
import { NodeRemovals } from './node-removal.js';
import { readCandidates, routeOf } from './routing.js';
import { stateJson } from './state-json.js';

/** Requests that change topic metadata on the Raft leader; a node that forwarded one catches up before answering. */
const metadataChangeOps: ReadonlySet<RequestOp> = new Set<RequestOp>([
  'createTopic',
  'stream',
  'deleteTopic',
  'configureTopic',
]);

/** What a connection looks like to the handler (the transport's FrameConnection fits). */
/**
 * Reply bytes the long reads under way on one connection may make together (at their byteCountMax):
 * four maximum replies, the transport's bound on unsent replies per connection.
 */
export const longReadBytesMaxPerConnection = frameServerDefaults.replyPendingMaxBytesPerConnection;

export interface ReplyChannel {
  readonly id: number;
  /** host:port of the client, for bounding failed authentications per host. */
  readonly remoteAddress?: string;
  send(payload: Uint8Array): void;
  close(): void;
  readonly closed: boolean;
  /** Resolves when the connection's unsent replies are under its bound (frame-server.ts); absent: no bound. */
  replyRoom?(): Promise<void>;
}

export interface RequestHandlerOptions {
  readonly topics: TopicService;
  readonly controller: Controller;
  readonly cluster: ClusterView;
  readonly nodeId: number;
  readonly clientAddr: string;
  /** Builds the METRICS JSON (seed 002's fields and Walrus's, metrics-json.ts). */
  readonly metricsJson: () => Record<string, unknown>;
  readonly logger: Logger;
  /**
   * False while the node starts: its peer port is open (Raft needs it) before its topics are
   * recovered from the WAL, and a request another node forwards then is answered UNAVAILABLE
   * rather than from a topic table that does not yet know the acknowledged ends. Default: ready.
   */
  readonly ready?: () => boolean;
  /** True once this node was removed from the Raft configuration: it answers clients UNAVAILABLE. */
  readonly removed?: () => boolean;
  /**
   * TEST ONLY (the whole-node simulator): accept the peer-only ops on the client path too, because
   * its operator's removeNode stands for walrus-cli, which reaches the Raft leader's peer port
   * (executeForwarded there, as the client path's relay does). Default false: FORBIDDEN.
   */
  readonly acceptPeerOnlyOpsFromClients?: boolean;
  /**
   * Told when a client request is answered, with its op, its performance.now() at the start and
   * its error code (null: success): node/metrics/request-metrics.ts. Called on the hot path.
   */
  readonly requestObserver?: {
    requestDone(op: string, startedMs: number, errorCode: string | null): void;
    /** `memberCount` plain appends of one read chunk went to the topic as one (append-join.ts). */
    appendsJoined?(memberCount: number): void;
  };
  /** Client-port authentication (client-auth.ts). Default: open, text protocol on. */
  readonly auth?: ClientAuth;
}

/**
 * Ops the client port refuses (FORBIDDEN): it is not authenticated. Nodes send them one another
 * over the peer port (localOffsetForTimestamp, handOff), where `executeForwarded` runs them, and
 * `walrus-cli remove-node` sends removeNode there too, proving the cluster secret.
 */
const peerOnlyOps: ReadonlySet<RequestOp> = new Set<RequestOp>([
  'removeNode',
  'localOffsetForTimestamp',
  'handOff',
  'transferLeader',
  'nodeStopping',
]);

/** Errors after which a read of a sealed segment is tried on the next replica. */
const readFailoverCodes: ReadonlySet<string> = new Set([
  ErrorCode.UNAVAILABLE,
  ErrorCode.DATA_LOST,
  ErrorCode.NOT_LEADER,
  ErrorCode.TIMEOUT,
  ErrorCode.CORRUPT_RECORD,
]);

export const requestHandlerLimits = {
  /** Bytes one GET / consumer read may return at most. */
  readByteCountMax: 4 * 1024 * 1024,
  /** Times a client's request is routed again after NOT_LEADER from a node that just lost the target. */
  rerouteCountMax: 3,
} as const;

export class RequestHandler {
  private readonly options: RequestHandlerOptions;
  private readonly topics: TopicService;
  /** Abort controllers of long polls, per connection id, so a closed connection frees its waiters. */
  private readonly polls = new Map<number, Set<AbortController>>();
  /** Per connection: reply bytes its long reads under way may make, and the reads waiting (withReplyRoom). */
  private readonly longReads = new Map<number, { reservedBytes: number; waiting: (() => void)[] }>();
  /** Text replies must go back in command order; binary ones may not. */
  private readonly textQueues = new Map<number, Promise<void>>();
  private readonly auth: ClientAuth;
  /** remove-node: the one removal this node runs, and the resumption of one its metadata marks. */
  private readonly removals: NodeRemovals;
  /** Set by drain(): the node is shutting down and takes no new client request. */
  private draining = false;
  /** Plain appends of one connection's read chunk, joined into one append (append-join.ts). */
  private readonly joins: AppendJoin<ReplyChannel>;

  constructor(options: RequestHandlerOptions) {
    this.options = options;
    this.topics = options.topics;
    this.auth = options.auth ?? ClientAuth.open();
    this.removals = new NodeRemovals({
      self: options.nodeId,
      topics: options.topics,
      controller: options.controller,
      cluster: options.cluster,
    });
    this.joins = new AppendJoin<ReplyChannel>({
      append: (topic, records, acks) =>
        this.dispatch(
          null,
          acks === undefined ? { op: 'append', topic, records } : { op: 'append', topic, records, acks },
          false,
          this.options.nodeId,
        ) as Promise<ResponseByOp['append']>,
      roomNow: (topic) => this.topics.appender.roomNow(topic),
      alone: (m) => this.answer(m.conn, m.requestId, m.request, undefined, m.startedMs),
      reply: (m, firstOffset, lastOffset, joined) => this.answerJoined(m, firstOffset, lastOffset, joined),
      fail: (m, error) => this.failJoined(m, error),
      joined: (memberCount) => this.options.requestObserver?.appendsJoined?.(memberCount),
    });
  }

  /**
   * From now on every new client request is answered UNAVAILABLE (retryable: nothing is applied;
   * the cluster client moves on to another node) while those in flight finish (SIGTERM); long
   * polls waiting here end at once.
   */
  drain(): void {
    this.draining = true;
    // Long polls here answer now with what they have (an empty read is a valid answer).
    for (const set of this.polls.values()) for (const controller of set) controller.abort();
  }

  /** Why a new client request cannot be served now (shutting down, starting), else null. */
  private notServing(): WalrusError | null {
    if (this.draining)
      return new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${this.options.nodeId} is shutting down; retry on another node`,
      );
    if (this.options.removed?.() === true)
      return new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${this.options.nodeId} was removed from the cluster and serves no client; retry on another node (stop this one, or wipe its data and join it again)`,
      );
    if (this.options.ready?.() === false)
      return new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${this.options.nodeId} is starting and has not recovered its topics yet; retry`,
      );
    return null;
  }

  onFrame(conn: ReplyChannel, payload: Buffer): void {
    if (isBinaryFrame(payload)) this.onBinary(conn, payload);
    else {
      this.joins.flushAll(); // a text command sees the appends that came before it done
      this.onText(conn, payload);
    }
  }

  /**
   * A frame the transport refused unread (the node's input budget was spent): answered with `error`
   * (BUSY: nothing was applied) as its request's reply, a binary error under its request id and
   * opcode, or a text `ERR` in command order. `head` is the frame's first bytes.
   */
  onRefused(conn: ReplyChannel, head: Buffer, error: WalrusError): void {
    if (isBinaryFrame(head)) {
      if (head.length >= binaryHeaderSizeBytes) {
        conn.send(encodeErrorReply(head.readUInt32LE(binaryRequestIdOffset), error, head[2]!));
      } else {
        conn.send(encodeTextError(error));
        conn.close();
      }
      return;
    }
    this.inTextOrder(conn, async () => encodeTextError(error));
  }

  onClose(conn: ReplyChannel): void {
    for (const controller of this.polls.get(conn.id) ?? []) controller.abort();
    this.polls.delete(conn.id);
    this.longReads.delete(conn.id);
    this.textQueues.delete(conn.id);
    this.auth.forget(conn.id);
  }

  private onBinary(conn: ReplyChannel, payload: Buffer): void {
    if (conn.closed) return; // its reply could not be sent: the work is not started
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
    if (request.op === 'authenticate') {
      this.authenticate(conn, requestId, request.token);
      return;
    }
    // Starting or shutting down: nothing is served to anyone (and nothing is told but that).
    const unavailable = this.notServing();
    if (unavailable !== null) {
      conn.send(encodeErrorReply(requestId, unavailable, request.op));
      return;
    }
    const refused = this.auth.refusal(conn.id, request);
    if (refused !== null) {
      conn.send(encodeErrorReply(requestId, refused, request.op));
      if (refused.code === ErrorCode.UNAUTHENTICATED) conn.close();
      return;
    }
    if (peerOnlyOps.has(request.op) && this.options.acceptPeerOnlyOpsFromClients !== true) {
      const refusal = new WalrusError(
        ErrorCode.FORBIDDEN,
        `${request.op} is not accepted on the client port: it is an admin or node-to-node operation, accepted on the peer port only (walrus-cli remove-node sends it there with the cluster secret)`,
      );
      conn.send(encodeErrorReply(requestId, refusal, request.op));
      return;
    }
    const target = routeOf(
      request,
      this.topics.metadata,
      this.options.nodeId,
      this.options.cluster.raftLeaderId(),
    );
    if (request.op === 'append' && target === this.options.nodeId && isJoinable(request)) {
      this.joins.add(conn, requestId, request, performance.now());
      return;
    }
    // Any other request sees the joined appends that came before it done (an expected offset…).
    this.joins.flushAll();
    if (target !== this.options.nodeId && this.topics.metadata.nodes.has(target)) {
      const leaderAddr = this.topics.metadata.nodes.get(target)!.clientAddr;
      if (request.op === 'append' && request.noForward === true && leaderAddr !== '') {
        // The client routes by itself: it learns the leader's address rather than pay a hop per append.
        const redirect = new WalrusError(
          ErrorCode.NOT_LEADER,
          `node ${this.options.nodeId} does not lead the active segment of topic '${request.topic}'; node ${target} does`,
          { leaderHint: { nodeId: target, clientAddr: leaderAddr } },
        );
        conn.send(encodeErrorReply(requestId, redirect, request.op));
        return;
      }
      this.relay(conn, target, requestId, request, payload);
      return;
    }
    this.answer(conn, requestId, request, target);
  }

  /** A joined append's reply to one of its members, whose records are [firstOffset, lastOffset]. */
  private answerJoined(
    m: JoinMember<ReplyChannel>,
    firstOffset: number,
    lastOffset: number,
    joined: ResponseByOp['append'],
  ): void {
    const observer = this.options.requestObserver;
    try {
      const { timestampMs, duplicate, acks } = joined;
      m.conn.send(encodeAppendReply(m.requestId, firstOffset, lastOffset, timestampMs, duplicate, acks));
      observer?.requestDone('append', m.startedMs, null);
    } catch (error) {
      this.failJoined(m, error);
    }
  }

  /** A joined append's failure, answered to one of its members. */
  private failJoined(m: JoinMember<ReplyChannel>, error: unknown): void {
    const err = toWalrusError(error);
    if (err.code === ErrorCode.INTERNAL)
      this.options.logger.error({ err: String(error), op: 'append' }, 'request failed');
    m.conn.send(encodeErrorReply(m.requestId, err, 'append'));
    this.options.requestObserver?.requestDone('append', m.startedMs, err.code);
  }

  /** The `authenticate` request: its scopes, or UNAUTHENTICATED / BUSY and the connection closed. */
  private authenticate(conn: ReplyChannel, requestId: number, token: string): void {
    try {
      const granted = this.auth.authenticate(conn.id, conn.remoteAddress ?? '?', token);
      conn.send(encodeReply(requestId, 'authenticate', { scopes: granted }));
    } catch (error) {
      const err = toWalrusError(error);
      this.options.logger.warn(
        { conn: conn.id, remote: conn.remoteAddress, code: err.code },
        'client authentication refused',
      );
      conn.send(encodeErrorReply(requestId, err, 'authenticate'));
      conn.close();
    }
  }

  /**
   * Executes (or forwards, decoded) a binary request and sends its reply frame. `target` is the
   * route the caller just computed, so the first attempt does not compute it again.
   */
  private answer(
    conn: ReplyChannel,
    requestId: number,
    request: Request,
    target?: number,
    startedMs = performance.now(),
  ): void {
    const observer = this.options.requestObserver;
    this.dispatch(conn, request, false, target).then(
      (answered) => {
        const reply = request.op === 'listTopics' ? this.visibleTopics(conn, answered) : answered;
        try {
          conn.send(encodeReply(requestId, request.op, reply as ResponseByOp[typeof request.op]));
          observer?.requestDone(request.op, startedMs, null);
        } catch (error) {
          const err = toWalrusError(error);
          conn.send(encodeErrorReply(requestId, err, request.op));
          observer?.requestDone(request.op, startedMs, err.code);
        }
      },
      (error: unknown) => {
        const err = toWalrusError(error);
        if (err.code === ErrorCode.INTERNAL)
          this.options.logger.error({ err: String(error), op: request.op }, 'request failed');
        conn.send(encodeErrorReply(requestId, err, request.op));
        observer?.requestDone(request.op, startedMs, err.code);
      },
    );
  }

  /** A listTopics reply as the connection's token may see it (its topic prefixes only). */
  private visibleTopics(conn: ReplyChannel, reply: ResponseByOp[RequestOp]): ResponseByOp[RequestOp] {
    const principal = this.auth.principalOf(conn.id);
    if (principal === undefined || principal.topicPrefixes === null) return reply;
    const list = reply as ResponseByOp['listTopics'];
    return { topics: list.topics.filter((t) => principal.topicPrefixes!.some((p) => t.name.startsWith(p))) };
  }

  /**
   * Sends a binary request frame, bytes unchanged, to the node that must execute it, and its reply
   * frame back to the client unchanged. Only a NOT_LEADER reply (the target's metadata moved on:
   * a rollover, a leader change) is looked into: the request then takes the decoded path, which
   * catches up and routes again. A topic change is answered once this node applied it too.
   */
  private relay(
    conn: ReplyChannel,
    target: number,
    requestId: number,
    request: Request,
    frame: Buffer,
  ): void {
    const waitMs = request.op === 'read' ? request.waitMs : 0;
    const startedMs = performance.now();
    const observer = this.options.requestObserver;
    this.options.cluster.forwardRaw(target, frame, waitMs).then(
      async (reply) => {
        let code: string | null = null;
        if (isErrorFrame(reply)) {
          const decoded = decodeReply(reply);
          if (decoded.kind === 'error' && decoded.error.code === ErrorCode.NOT_LEADER) {
            this.answer(conn, requestId, request, undefined, startedMs);
            return;
          }
          code = decoded.kind === 'error' ? decoded.error.code : ErrorCode.INTERNAL;
        }
        if (metadataChangeOps.has(request.op)) await this.options.cluster.catchUpWithLeader().catch(() => {});
        conn.send(reply);
        observer?.requestDone(request.op, startedMs, code);
      },
      (error: unknown) => {
        // A sealed segment's copy on another replica may still be served: the decoded path tries them.
        if (
          request.op === 'read' &&
          readCandidates(request, this.topics.metadata, this.options.nodeId).length > 1
        ) {
          this.answer(conn, requestId, request, undefined, startedMs);
          return;
        }
        const err = toWalrusError(error);
        conn.send(encodeErrorReply(requestId, err, request.op));
        observer?.requestDone(request.op, startedMs, err.code);
      },
    );
  }

  /**
   * Executes a client request that another node forwarded here (a binary request frame) and
   * answers with a binary reply frame. A forwarded request is never forwarded again: if this node
   * is not the right one after all, the answer is NOT_LEADER with a hint.
   */
  async executeForwarded(payload: Buffer): Promise<Buffer> {
    const decoded = decodeRequest(payload);
    if (decoded.kind === 'malformed')
      return encodeErrorReply(decoded.requestId ?? 0, decoded.error, decoded.opcode);
    const { requestId, request } = decoded;
    if (this.options.ready?.() === false) {
      const starting = new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${this.options.nodeId} is starting and has not recovered its topics yet; retry`,
      );
      return encodeErrorReply(requestId, starting, request.op);
    }
    try {
      const reply = await this.dispatch(null, request, true);
      return encodeReply(requestId, request.op, reply as ResponseByOp[typeof request.op]);
    } catch (error) {
      return encodeErrorReply(requestId, toWalrusError(error), request.op);
    }
  }

  /**
   * Runs a request here or forwards it. A node's applied metadata may lag a change the Raft leader
   * has already applied and answered (a topic just created, a segment just handed over): when the
   * answer is TOPIC_NOT_FOUND, or NOT_LEADER for a request another node forwarded here, this node
   * catches up with the leader and tries once more before answering. Neither error has changed
   * anything, so the retry is safe. A TOPIC_NOT_FOUND this node cannot confirm (no leader to catch
   * up with) is answered UNAVAILABLE: the topic may exist in metadata this node has not applied.
   */
  private dispatch(
    conn: ReplyChannel | null,
    request: Request,
    forwarded: boolean,
    target?: number,
  ): Promise<ResponseByOp[RequestOp]> {
    // No async frame of its own: every request passes here, and only a failure needs more. An
    // append routed here goes straight to the appender (the hot path: no dispatchOnce frame).
    const once =
      request.op === 'append' && target === this.options.nodeId
        ? this.topics.appender.append(request.topic, request.records, request)
        : this.dispatchOnce(conn, request, forwarded, target);
    return once.catch((error: unknown) => this.retryIfStale(error, conn, request, forwarded));
  }

  private async retryIfStale(
    error: unknown,
    conn: ReplyChannel | null,
    request: Request,
    forwarded: boolean,
  ): Promise<ResponseByOp[RequestOp]> {
    if (!(error instanceof WalrusError) || request.op === 'deleteTopic') throw error;
    if (error.code === ErrorCode.NOT_LEADER && !forwarded) return this.reroute(error, conn, request);
    const stale =
      error.code === ErrorCode.TOPIC_NOT_FOUND || (forwarded && error.code === ErrorCode.NOT_LEADER);
    if (!stale) throw error;
    try {
      await this.options.cluster.catchUpWithLeader();
    } catch (catchUpError) {
      // TOPIC_NOT_FOUND from metadata that may lag is not an answer: the topic may well exist.
      if (error.code !== ErrorCode.TOPIC_NOT_FOUND) throw error;
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${this.options.nodeId} does not know topic '${'topic' in request ? request.topic : ''}' and cannot catch up with the Raft leader to make sure (${(catchUpError as Error).message}); retry`,
      );
    }
    return this.dispatchOnce(conn, request, forwarded);
  }

  /**
   * A request this node took from a client found that another node leads its target now (a
   * rollover moved the active segment while the append waited, a Raft leader changed): it is
   * routed again from the metadata as now applied, up to `rerouteCountMax` times, so clients (the
   * Walrus text protocol has no retry) never see a rollover. Safe: NOT_LEADER is answered before
   * anything is written.
   */
  private async reroute(
    first: WalrusError,
    conn: ReplyChannel | null,
    request: Request,
  ): Promise<ResponseByOp[RequestOp]> {
    let last = first;
    for (let attempt = 0; attempt < requestHandlerLimits.rerouteCountMax; attempt++) {
      const hinted = last.leaderHint?.nodeId ?? 0;
      const routed = routeOf(
        request,
        this.topics.metadata,
        this.options.nodeId,
        this.options.cluster.raftLeaderId(),
      );
      // The hint comes from newer metadata than ours when they disagree: catch up before routing.
      if (hinted !== 0 && hinted !== routed) await this.options.cluster.catchUpWithLeader().catch(() => {});
      try {
        return await this.dispatchOnce(conn, request, false);
      } catch (error) {
        if (!(error instanceof WalrusError) || error.code !== ErrorCode.NOT_LEADER) throw error;
        last = error;
      }
    }
    throw last;
  }

  /**
   * A read tried on each node that may serve it (routing.ts `readCandidates`): a replica that is
   * down, lacks the data or finds it corrupt is passed over for the next one.
   */
  private async readWithFailover(
    conn: ReplyChannel | null,
    request: Extract<Request, { op: 'read' }>,
  ): Promise<ResponseByOp[RequestOp]> {
    const self = this.options.nodeId;
    const candidates = readCandidates(request, this.topics.metadata, self);
    let last: unknown;
    for (const target of candidates) {
      try {
        if (target === self) return await this.dispatchOnce(conn, request, true);
        if (!this.topics.metadata.nodes.has(target)) continue;
        return await this.options.cluster.forward<'read'>(target, request);
      } catch (error) {
        last = error;
        const code = error instanceof WalrusError ? error.code : ErrorCode.INTERNAL;
        if (candidates.length === 1 || !readFailoverCodes.has(code)) throw error;
      }
    }
    throw (
      last ??
      new WalrusError(
        ErrorCode.UNAVAILABLE,
        `no replica of topic '${request.topic}' could serve offset ${request.offset}`,
      )
    );
  }

  private async dispatchOnce(
    conn: ReplyChannel | null,
    request: Request,
    forwarded: boolean,
    routed?: number,
  ): Promise<ResponseByOp[RequestOp]> {
    const t = this.topics;
    if (request.op === 'read' && !forwarded) return this.readWithFailover(conn, request);
    const target =
      routed ?? routeOf(request, t.metadata, this.options.nodeId, this.options.cluster.raftLeaderId());
    if (target !== this.options.nodeId) {
      if (forwarded) {
        throw new WalrusError(
          ErrorCode.NOT_LEADER,
          `node ${this.options.nodeId} is not the node for this request`,
          {
            leaderHint: { nodeId: target, clientAddr: t.metadata.nodes.get(target)?.clientAddr ?? '' },
          },
        );
      }
      const reply = await this.options.cluster.forward(
        target,
        request as Extract<Request, { op: typeof request.op }>,
      );
      // Topic changes run on the Raft leader; what this node serves next (appends, describe,
      // routing) reads its own applied metadata, so it first catches up with the change.
      // Best effort: the change is made whatever happens here, so a failure to catch up (no leader
      // for a while) must not turn its success into an error.
      if (metadataChangeOps.has(request.op)) await this.options.cluster.catchUpWithLeader().catch(() => {});
      return reply;
    }
    switch (request.op) {
      case 'ping':
        return { nodeId: this.options.nodeId };
      case 'createTopic':
        return t.admin.create(request.topic, request.retention, request.replicationFactor);
      case 'describeTopic':
        return { topic: t.admin.describe(request.topic) };
      case 'stream':
        return t.streams.handle(request.topic, request.action);
      case 'listTopics':
        return { topics: t.admin.list() };
      case 'deleteTopic':
        return { deleted: await t.admin.delete(request.topic) };
      case 'configureTopic':
        return { topic: await t.admin.configure(request.topic, request.retention) };
      case 'append':
        // The request carries the append's options under their own names.
        return t.appender.append(request.topic, request.records, request);
      case 'read': {
        const read = (signal: AbortSignal) =>
          t.reader.read(
            request.topic,
            request.offset,
            {
              recordCountMax: request.recordCountMax,
              byteCountMax: request.byteCountMax,
              waitMs: request.waitMs,
            },
            signal,
          );
        return this.longPoll(conn, (signal) =>
          // Reads that make large replies wait for room per connection: a client that pipelines
          // them and never reads its replies gets no more work done for it (40 such clients
          // stalled a node). Long polls are left out: they hold nothing while they wait.
          conn !== null && request.waitMs === 0 && request.byteCountMax > readerLimits.chunkSizeBytes
            ? this.withReplyRoom(conn, Math.min(request.byteCountMax, protocolLimits.frameSizeMaxBytes), () =>
                read(signal),
              )
            : read(signal),
        );
      }
      case 'offsetForTimestamp':
        return { offset: await t.reader.offsetForTimestamp(request.topic, request.timestampMs) };
      case 'localOffsetForTimestamp':
        return { offset: t.reader.localOffsetForTimestamp(request.topic, request.timestampMs) };
      case 'consumerReadNext':
        return t.consumers.readNext(request.topic, request.consumer, {
          recordCountMax: request.recordCountMax,
          byteCountMax: request.byteCountMax,
          autoCommit: request.autoCommit,
        });
      case 'consumerCommit':
        return t.consumers.commit(request.topic, request.consumer, request.offset, request.expectedOffset);
      case 'consumerGet':
        return t.consumers.get(request.topic, request.consumer);
      case 'consumerList':
        return t.consumers.list(request.topic);
      case 'consumerDelete':
        return t.consumers.delete(request.topic, request.consumer);
      case 'metrics':
        return { metrics: this.options.metricsJson() };
      case 'state':
        return { state: stateJson(t, request.topic) };
      case 'removeNode':
        return this.removals.remove(request.nodeId);
      case 'handOff':
        return { handedOff: await t.appender.handOff(request.nodeId) };
      case 'nodeStopping':
        this.options.controller.markStopping(request.nodeId);
        return { marked: true };
      case 'authenticate':
        throw new WalrusError(
          ErrorCode.BAD_REQUEST,
          'authenticate is answered by the node a client connects to, never forwarded',
        );
      case 'transferLeader':
        return transferLeader(request.nodeId, this.options.nodeId, this.options.cluster);
    }
  }

  /**
   * Runs a read that may make a reply of up to `bytes` once the connection's long reads under way
   * leave room for it under `longReadBytesMaxPerConnection` (one always runs), and its unsent
   * replies are under their bound (ReplyChannel.replyRoom). A read whose connection closed
   * meanwhile still runs, and stops at its first step (its signal is aborted: reader.ts).
   */
  private async withReplyRoom<T>(conn: ReplyChannel, bytes: number, run: () => Promise<T>): Promise<T> {
    let gate = this.longReads.get(conn.id);
    if (gate === undefined) {
      gate = { reservedBytes: 0, waiting: [] };
      this.longReads.set(conn.id, gate);
    }
    while (gate.reservedBytes > 0 && gate.reservedBytes + bytes > longReadBytesMaxPerConnection) {
      await new Promise<void>((resolve) => gate!.waiting.push(resolve));
    }
    gate.reservedBytes += bytes;
    try {
      if (conn.replyRoom !== undefined && !conn.closed) await conn.replyRoom();
      return await run();
    } finally {
      gate.reservedBytes -= bytes;
      const waiting = gate.waiting;
      gate.waiting = [];
      for (const wake of waiting) wake();
    }
  }

  /**
   * Runs a read under an abort signal that fires when its connection closes: a long poll stops
   * waiting, and a long read stops between chunks (reader.ts), so a client that pipelines reads and
   * leaves takes their work with it.
   */
  private async longPoll<T>(conn: ReplyChannel | null, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    if (conn === null) return run(controller.signal);
    if (conn.closed) controller.abort();
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
    if (!this.auth.textProtocol) {
      const refusal = new WalrusError(
        ErrorCode.UNAUTHENTICATED,
        'the Walrus text protocol is off on this node: it cannot carry a token; use the binary protocol',
      );
      this.inTextOrder(conn, async () => encodeTextError(refusal));
      void this.textQueues.get(conn.id)?.then(() => conn.close());
      return;
    }
    const unavailable = this.notServing();
    if (unavailable !== null) {
      this.inTextOrder(conn, async () => encodeTextError(unavailable));
      return;
    }
    const parsed = parseTextCommand(payload);
    this.inTextOrder(conn, async () => {
      if (!parsed.ok) return encodeTextError(parsed.error);
      const op = textCommandOps[parsed.command.kind] ?? 'unknown';
      const startedMs = performance.now();
      const observer = this.options.requestObserver;
      try {
        const reply = await this.text(parsed.command);
        observer?.requestDone(op, startedMs, null);
        return reply;
      } catch (error) {
        const err = toWalrusError(error);
        observer?.requestDone(op, startedMs, err.code);
        return encodeTextError(err);
      }
    });
  }

  /**
   * The text protocol has no request ids: commands run one after another per connection, as a
   * Walrus user pipelining REGISTER then PUT expects, and replies leave in command order.
   */
  private inTextOrder(conn: ReplyChannel, run: () => Promise<Buffer>): void {
    const before = this.textQueues.get(conn.id) ?? Promise.resolve();
    const next = before.then(async () => {
      if (conn.closed) return; // nothing left to answer: its commands are not run
      conn.send(await run());
    });
    this.textQueues.set(conn.id, next);
    void next.then(() => {
      if (this.textQueues.get(conn.id) === next) this.textQueues.delete(conn.id);
    });
  }

  /** Text commands are served through the same routed operations as binary requests. */
  private async text(command: TextCommand): Promise<Buffer> {
    switch (command.kind) {
      case 'REGISTER':
        await this.dispatch(null, { op: 'createTopic', topic: command.topic }, false);
        return encodeTextReply({ kind: 'OK' });
      case 'PUT':
        await this.dispatch(
          null,
          { op: 'append', topic: command.topic, records: [{ value: command.value }] },
          false,
        );
        return encodeTextReply({ kind: 'OK' });
      case 'GET': {
        const reply = (await this.dispatch(
          null,
          {
            op: 'consumerReadNext',
            topic: command.topic,
            consumer: sharedConsumerName,
            recordCountMax: 1,
            byteCountMax: requestHandlerLimits.readByteCountMax,
            autoCommit: true,
          },
          false,
        )) as ResponseByOp['consumerReadNext'];
        const record = reply.records[0];
        return record === undefined
          ? encodeTextReply({ kind: 'EMPTY' })
          : encodeTextReply({ kind: 'OK', payload: record.value });
      }
      case 'STATE': {
        const reply = (await this.dispatch(
          null,
          { op: 'state', topic: command.topic },
          false,
        )) as ResponseByOp['state'];
        // Walrus answers STATE and METRICS with the JSON object alone (no `OK `): clients parse
        // the whole reply as JSON.
        return encodeTextReply({ kind: 'JSON', json: JSON.stringify(reply.state) });
      }
      case 'METRICS':
        return encodeTextReply({ kind: 'JSON', json: JSON.stringify(this.options.metricsJson()) });
      default:
        throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, 'unknown command');
    }
  }
}

/** The op a Walrus text command counts as in the request metrics. */
const textCommandOps: Readonly<Record<string, RequestOp>> = {
  REGISTER: 'createTopic',
  PUT: 'append',
  GET: 'consumerReadNext',
  STATE: 'state',
  METRICS: 'metrics',
};

/** A binary reply frame with the error flag set (flags are byte 3 of the header). */
function isErrorFrame(frame: Buffer): boolean {
  return frame.length > 3 && (frame[3]! & BinaryFlag.ERROR) !== 0;
}
