/**
 * Joins the plain appends one connection sends in one read chunk into ONE append: one pass
 * through the appender, one WAL batch, one replication offer, instead of one each; every request
 * then gets its own slice of the offsets back. Profiled at 256 appends in flight, the path per
 * request (admission, WAL queueing, replication offer, their promises) cost more node CPU than
 * decoding the request and answering it.
 *
 * Joinable: an append routed to this node, with records, and none of the options checked per
 * request (producer id, sequence or epoch, expected offset, close, Stream-Seq). Members of one
 * join share the topic and the acks. A join ends (and is sent) when the connection's read chunk
 * has been handled (a microtask after it), when the next joinable append does not fit it (another
 * topic or acks, or the limits of serverLimits), and before any other request is handled, so that
 * every request still sees the appends that arrived before it as done (an expected offset, a read
 * of the topic's end). A join of one member is sent as it came. A join never moves a segment
 * boundary: one the active segment would not have admitted member by member (roomNow) goes alone,
 * member by member, and the boundary falls where it would have.
 *
 * A joined append is atomic like any append: written whole or not at all, so each member gets the
 * join's outcome. The exceptions are the errors one request's own records can cause (a record too
 * large, bad headers, a batch or disk too full for the sum): nothing was written, and each member
 * is sent again alone, so that it fails or succeeds exactly as it would have on its own (the
 * gateway's append-coalescer.ts does the same).
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { AppendAcks, RecordInput, Request, ResponseByOp } from '../protocol/messages.js';
import { outcomeUnknownError, recordRefusalCodes } from '../protocol/outcome.js';
import { serverLimits } from './limits.js';

export type AppendRequest = Extract<Request, { op: 'append' }>;
export type AppendReply = ResponseByOp['append'];

/** The connection a member came on: its id, and whether its replies can still be sent. */
export interface JoinConnection {
  readonly id: number;
  readonly closed: boolean;
}

/** One request in a join. */
export interface JoinMember<C extends JoinConnection = JoinConnection> {
  readonly conn: C;
  readonly requestId: number;
  readonly request: AppendRequest;
  /** performance.now() when the request was taken (for the request metrics). */
  readonly startedMs: number;
}

/** What the join needs of the request handler. */
export interface AppendJoinPorts<C extends JoinConnection> {
  /** Runs one append of `records` (routing and retries as for any request); never throws. */
  append(topic: string, records: readonly RecordInput[], acks: AppendAcks | undefined): Promise<AppendReply>;
  /**
   * Records the topic's active segment takes now before it is full (Appender.roomNow): a join
   * never carries a segment past the boundary separate appends would have stopped at.
   */
  roomNow(topic: string): number;
  /** Runs a member alone, as if it had never been joined. */
  alone(member: JoinMember<C>): void;
  /** Answers a member with the joined reply, its own offsets being [firstOffset, lastOffset]. */
  reply(member: JoinMember<C>, firstOffset: number, lastOffset: number, joined: AppendReply): void;
  /** Answers a member with an error. */
  fail(member: JoinMember<C>, error: unknown): void;
  /** A join of `memberCount` (two or more) requests is sent as one append (for the metrics). */
  joined?(memberCount: number): void;
}

/**
 * Codes one request's records can cause in a joined batch (nothing is written): each is sent
 * alone. Besides the record refusals, DISK_FULL: the disk reserve is checked against the batch's
 * bytes, so a smaller append may still fit (see send).
 */
const perRequestCodes: ReadonlySet<string> = new Set<string>([...recordRefusalCodes, ErrorCode.DISK_FULL]);

interface Join<C extends JoinConnection> {
  readonly conn: C;
  readonly topic: string;
  readonly acks: AppendAcks | undefined;
  readonly members: JoinMember<C>[];
  recordCount: number;
  sizeBytes: number;
}

/** Record bytes of an append: values, header names and values (UTF-16 lengths: a bound, not exact). */
export function recordBytesOf(records: readonly RecordInput[]): number {
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    bytes += r.value.byteLength;
    const headers = r.headers;
    if (headers !== undefined)
      for (const name in headers) bytes += name.length + (headers[name]?.length ?? 0);
  }
  return bytes;
}

/** True for an append whose checks are the same whether it is joined or not. */
export function isJoinable(request: AppendRequest): boolean {
  return (
    request.records.length > 0 &&
    request.producerId === undefined &&
    request.producerSeq === undefined &&
    request.producerEpoch === undefined &&
    request.expectedOffset === undefined &&
    request.close !== true &&
    request.streamSeq === undefined
  );
}

export class AppendJoin<C extends JoinConnection> {
  /** The open join of each connection (at most one each, so bounded by the connections). */
  private readonly open = new Map<number, Join<C>>();
  private flushQueued = false;
  private readonly flushBound = (): void => {
    this.flushQueued = false;
    this.flushAll();
  };

  constructor(private readonly ports: AppendJoinPorts<C>) {}

  /** Joins held and not yet sent (0 between turns). */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * Takes a joinable append (isJoinable; routed to this node). It is sent with the others of its
   * connection's join, at the latest in a microtask after the current turn's synchronous work.
   */
  add(conn: C, requestId: number, request: AppendRequest, startedMs: number): void {
    const records = request.records;
    const sizeBytes = recordBytesOf(records);
    const { joinedAppendRecordCountMax, joinedAppendSizeMaxBytes } = serverLimits;
    const member: JoinMember<C> = { conn, requestId, request, startedMs };
    if (records.length > joinedAppendRecordCountMax || sizeBytes > joinedAppendSizeMaxBytes) {
      // Larger than any join: it goes alone, after what its connection sent before it.
      this.flushAll();
      this.ports.alone(member);
      return;
    }
    let join = this.open.get(conn.id);
    if (
      join !== undefined &&
      (join.topic !== request.topic ||
        join.acks !== request.acks ||
        join.recordCount + records.length > joinedAppendRecordCountMax ||
        join.sizeBytes + sizeBytes > joinedAppendSizeMaxBytes)
    ) {
      this.open.delete(conn.id);
      this.send(join);
      join = undefined;
    }
    if (join === undefined) {
      join = { conn, topic: request.topic, acks: request.acks, members: [], recordCount: 0, sizeBytes: 0 };
      this.open.set(conn.id, join);
    }
    join.members.push(member);
    join.recordCount += records.length;
    join.sizeBytes += sizeBytes;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushBound);
    }
  }

  /** Sends every open join now (before a request that must see them done). */
  flushAll(): void {
    if (this.open.size === 0) return;
    // Entry by entry, not clear(): clear() leaves the old table (long-lived, so in V8's old space)
    // pointing at the joins, and every young object they reach then survived each scavenge until
    // the next full GC (measured: 2 MB promoted per scavenge, 4x the scavenge time, 5x the full GCs).
    for (const [id, join] of this.open) {
      this.open.delete(id);
      this.send(join);
    }
  }

  private send(join: Join<C>): void {
    // A connection closed meanwhile cannot be answered: its requests are not started (as unjoined).
    if (join.conn.closed) return;
    const { members, topic, acks } = join;
    // Alone, each member would be admitted while the records before it leave the active segment
    // room (the last may fill it past its count, as any multi-record append may), and those after
    // would wait for the rollover. A join that the segment would not admit whole goes alone, member
    // by member, so that the boundary falls where it would have (once per segment: no cost).
    const last = members[members.length - 1]!;
    if (members.length === 1 || join.recordCount - last.request.records.length >= this.ports.roomNow(topic)) {
      for (const m of members) this.ports.alone(m);
      return;
    }
    const records: RecordInput[] = new Array<RecordInput>(join.recordCount);
    let at = 0;
    for (let m = 0; m < members.length; m++) {
      const own = members[m]!.request.records;
      for (let i = 0; i < own.length; i++) records[at++] = own[i]!;
    }
    this.ports.joined?.(members.length);
    this.ports.append(topic, records, acks).then(
      (reply) => this.split(members, records.length, reply),
      (error: unknown) => {
        // DISK_FULL is one request's doing only when the disk reserve refused the batch's bytes
        // before anything was written; one from the group commit's write froze the segment's
        // replication (roomNow 0), and every append of that group commit failed so alone too.
        if (
          error instanceof WalrusError &&
          perRequestCodes.has(error.code) &&
          (error.code !== ErrorCode.DISK_FULL || this.ports.roomNow(topic) > 0)
        ) {
          // Nothing was written: each alone, so that only a culprit fails.
          for (const m of members) if (!m.conn.closed) this.ports.alone(m);
          return;
        }
        for (const m of members) this.ports.fail(m, error);
      },
    );
  }

  /** Gives each member its slice of the joined append's offsets. */
  private split(members: readonly JoinMember<C>[], recordCount: number, reply: AppendReply): void {
    if (reply.duplicate || reply.lastOffset - reply.firstOffset + 1 !== recordCount) {
      // Answered for another count of records: no split of it can be trusted.
      const error = outcomeUnknownError(
        'append',
        new WalrusError(
          ErrorCode.INTERNAL,
          `a joined append of ${recordCount} records was answered with offsets ${reply.firstOffset}..${reply.lastOffset}`,
        ),
      );
      for (const m of members) this.ports.fail(m, error);
      return;
    }
    let first = reply.firstOffset;
    for (let m = 0; m < members.length; m++) {
      const member = members[m]!;
      const last = first + member.request.records.length - 1;
      this.ports.reply(member, first, last, reply);
      first = last + 1;
    }
  }
}
