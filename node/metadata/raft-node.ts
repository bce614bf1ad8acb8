/**
 * The Raft driver: runs the pure core (node/raft) on a real disk, a real clock and real peers.
 * It ticks the core on a timer, feeds it peer messages, and honours every Ready in the order the
 * core demands: persist (one fdatasync) → send → restore/apply → advance. Committed entries are
 * metadata commands applied to the MetadataState every node holds.
 *
 * It also owns what Raft alone does not: proposals from followers are forwarded to the leader
 * (and resolve once applied here, so a caller reads its own write on this node); a joining node is
 * registered (addresses and incarnation) and added as a learner, and promoted once caught up; a
 * join under a member's id with another incarnation is refused (a wiped node must be removed
 * first: cluster-identity.ts says why); the log is compacted into a snapshot of the state machine,
 * which goes to a lagging follower in acknowledged chunks (snapshot-transfer.ts: it may be far
 * larger than one peer frame). Peers are reached through an injected `PeerSender` (wired in
 * node/bin to the authenticated peer transport), so this file knows no sockets.
 */
import type { Logger } from '../log.js';
import assert from 'node:assert/strict';
import {
  type ConfChange,
  type Entry,
  EntryKind,
  type HardState,
  type Message,
  MessageType,
  Prng,
  RaftCore,
  RaftError,
  type RaftStatus,
  type RaftStorage,
  type Snapshot,
  decodeConfEntry,
  makeRaftConfig,
  quorumSize,
} from '../raft/index.js';
import { ErrorCode, WalrusError, isErrorCode } from '../protocol/error-codes.js';
import { type Scheduler, type TimerHandle, realScheduler, sleep } from '../scheduler.js';
import { identityMismatchMessage } from './cluster-identity.js';
import { isIdentityId } from './identity-id.js';
import { ReadBarrier } from './read-barrier.js';
import type { MetaCommand, MetadataSnapshot, MetadataState, NodeMeta } from './metadata-state.js';
import {
  SnapshotTransfer,
  type SnapshotTransferLimits,
  type SnapshotTransferStats,
} from './snapshot-transfer.js';
/** A log position as this node knows it; `term`/`leaderId` are null when it cannot tell them. */
export interface LogPosition {
  readonly index: number;
  /** The entry's term; null when the entry is compacted away or beyond this node's log. */
  readonly term: number | null;
  /** The leader of that term, as this node saw it; null when it never saw that term's leader. */
  readonly leaderId: number | null;
}

/** What METRICS shows of this node's Raft state. */
export interface RaftStatusForMetrics {
  readonly state: 'Leader' | 'Follower' | 'Candidate' | 'PreCandidate' | 'Learner';
  readonly term: number;
  /** The node voted for in this term (null: none). */
  readonly vote: number | null;
  readonly lastIndex: number;
  readonly applied: number;
  readonly leaderId: number | null;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** The last snapshot (null: none yet); its term is always known. */
  readonly snapshot: (LogPosition & { readonly term: number }) | null;
  /** Where the configuration in effect was written (null: the bootstrap configuration). */
  readonly membershipLogId: LogPosition | null;
  /** Addresses of members whose registration is applied, by node id. */
  readonly addresses: Readonly<Record<string, { readonly raftAddr: string; readonly clientAddr: string }>>;
  /** Leader only: every member, the leader itself included. */
  readonly progress: Readonly<
    Record<string, { readonly match: number; readonly next: number; readonly matched: LogPosition | null }>
  >;
  /** Leader only: when each member last answered it (epoch ms; the leader itself: now). */
  readonly ackedAtMs: Readonly<Record<string, number | null>> | null;
  /** Leader only: the newest time a quorum of voters had answered it (epoch ms). */
  readonly quorumAckedAtMs: number | null;
  /** False once the node's Raft has stopped. */
  readonly running: boolean;
  /** Chunked snapshot transfers to and from this node (snapshot-transfer.ts). */
  readonly snapshotTransfer?: SnapshotTransferStats;
}

/** The disk-backed storage the driver writes through (RaftDiskStorage implements it). */
export interface DurableRaftStorage extends RaftStorage {
  readonly fresh: boolean;
  persist(rd: { hardState: HardState | null; entries: readonly Entry[]; snapshot: Snapshot | null }): void;
  installCompaction(snapshot: Snapshot): void;
}

/** How the driver reaches other nodes by id. */
export interface PeerSender {
  /** One-way; never throws (a lost message is retransmitted by Raft). */
  send(to: number, payload: Uint8Array): void;
  request(to: number, payload: Uint8Array, timeoutMs: number): Promise<Buffer>;
  /**
   * One chunk of a snapshot transfer (snapshot-transfer.ts) as a `snapshotChunk` request; resolves
   * with the receiver's acknowledgement, rejects on an error reply, a lost link or the timeout.
   */
  requestSnapshotChunk(to: number, body: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Remembers members' addresses until the applied metadata holds them (see lookUpAddresses). */
  learn?(nodes: readonly NodeMeta[]): void;
}

export interface RaftCodec {
  encode(m: Message): Uint8Array;
  decode(bytes: Uint8Array): { ok: true; message: Message } | { ok: false; error: Error };
}

/** The node's one Logger (node/log.ts), under this module's name. */
export type RaftNodeLogger = Logger;

export interface RaftNodeOptions {
  readonly nodeId: number;
  readonly storage: DurableRaftStorage;
  readonly peers: PeerSender;
  readonly codec: RaftCodec;
  readonly state: MetadataState;
  readonly tickMs: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly seed: number;
  readonly logger: RaftNodeLogger;
  /** Called after each metadata command is applied (the broker creates segments it now leads). */
  readonly onApply?: (index: number, command: MetaCommand) => void;
  /**
   * Called after the state machine was replaced by a snapshot from the leader: any number of
   * commands were skipped, so the node reconciles its data with the new state as at start-up.
   */
  readonly onRestore?: () => void;
  /**
   * Called on the leader for every command it is about to propose (its own and forwarded ones):
   * lets the leader, which alone knows which voters are alive, fix placement decisions.
   */
  readonly prepareProposal?: (command: MetaCommand) => MetaCommand;
  /** Called when this node's Raft role or leader changes. */
  readonly onLeaderChange?: (leaderId: number) => void;
  /** Overrides of snapshotTransferLimits (tests). */
  readonly snapshotTransferLimits?: Partial<SnapshotTransferLimits>;
  /**
   * This node's cluster id (raft_meta/identity.bin), for join replies while the metadata holds
   * none yet (a joiner right after the bootstrap).
   */
  readonly localClusterId?: () => string | null;
  /** Clock and timers (default the real ones; the whole-node simulator passes simulated ones). */
  readonly scheduler?: Scheduler;
  /** Overrides raftNodeLimits.compactEntryCount (tests and the simulator compact often). */
  readonly compactEntryCount?: number;
}

export const raftNodeLimits = {
  /** Terms whose leader METRICS remembers (a log position names its term's leader). */
  leaderTermCountMax: 1_024,
  /** Proposals waiting to be applied on this node; beyond it BUSY. */
  pendingProposalCountMax: 100_000,
  /** How long a proposal may take to be applied before the caller gets TIMEOUT. */
  proposeTimeoutMs: 10_000,
  /** Applied entries beyond the last snapshot before the log is compacted. */
  compactEntryCount: 10_000,
  /** Bytes of one peer request (join / forwarded proposal). */
  peerRequestSizeMaxBytes: 2 * 1024 * 1024,
  /** Senders without a known address tracked for lookUpAddresses; beyond it the memory starts over. */
  addressLookupCountMax: 1_024,
} as const;

/** Peer requests (join, forwarded proposal, conf change) travel as small JSON bodies. */
export type PeerRequest =
  | { readonly type: 'propose'; readonly command: MetaCommand }
  | {
      readonly type: 'join';
      readonly nodeId: number;
      readonly raftAddr: string;
      readonly clientAddr: string;
      /** The joiner's incarnation (raft_meta/identity.bin). */
      readonly incarnation: string;
    }
  | { readonly type: 'confChange'; readonly change: ConfChange }
  /** What the asked leader has applied: a follower waits for it after a change the leader ran. */
  | { readonly type: 'appliedIndex' }
  /** Every member's addresses as the asked node has applied them (see lookUpAddresses). */
  | { readonly type: 'nodes' };

/** What a join answers: the leader, every member's addresses and the cluster id (null: not known yet). */
export interface JoinReply {
  readonly leaderId: number;
  readonly nodes: readonly NodeMeta[];
  readonly clusterId: string | null;
}

/** The addresses and identity a node registers under. */
export interface NodeRegistration {
  readonly nodeId: number;
  readonly raftAddr: string;
  readonly clientAddr: string;
  readonly incarnation: string;
}

interface Waiter {
  readonly term: number;
  readonly resolve: (index: number) => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
}

const textDecoder = new TextDecoder();

export class RaftNode {
  readonly nodeId: number;
  readonly state: MetadataState;
  private readonly o: RaftNodeOptions;
  private readonly core: RaftCore;
  private readonly storage: DurableRaftStorage;
  /** index → proposal waiting to be applied with its term. */
  private readonly waiters = new Map<number, Waiter>();
  /** Callers waiting until applied ≥ index (forwarded proposals). */
  private readonly appliedWaiters: { index: number; resolve: () => void }[] = [];
  /** Last tick number a message from each peer arrived at (liveness for placement decisions). */
  private readonly heardAtTick = new Map<number, number>();
  /** When (epoch ms) a Raft message from each peer last arrived: the acks METRICS reports on a leader. */
  private readonly heardAtMs = new Map<number, number>();
  /** term → the leader this node saw in it (METRICS names a log position's leader by its term). */
  private readonly leaderOfTerm = new Map<number, number>();
  /** Tick at which the address of each sender not in the applied metadata was last looked up. */
  private readonly addressLookedUpAtTick = new Map<number, number>();
  /** When (epoch ms) this node last became leader: acks older than that do not count. */
  private leaderSinceMs = 0;
  private tickCount = 0;
  private timer: TimerHandle | null = null;
  private processScheduled = false;
  private lastLeaderId = 0;
  private stopped = false;
  /** Snapshots to and from peers, in chunks (a MsgSnap may be far larger than a peer frame). */
  private readonly snapshots: SnapshotTransfer;
  private readonly scheduler: Scheduler;
  /** Leader-only reads wait here (ReadIndex): read-barrier.ts. */
  private readonly barrier: ReadBarrier;

  constructor(options: RaftNodeOptions) {
    this.o = options;
    this.scheduler = options.scheduler ?? realScheduler;
    this.nodeId = options.nodeId;
    this.state = options.state;
    this.storage = options.storage;
    const config = makeRaftConfig({
      id: options.nodeId,
      electionTick: options.electionTick,
      heartbeatTick: options.heartbeatTick,
    });
    this.core = new RaftCore(config, this.storage, new Prng(options.seed));
    this.snapshots = new SnapshotTransfer({
      channel: (to, body, timeoutMs) => this.o.peers.requestSnapshotChunk(to, body, timeoutMs),
      deliver: (from, payload) => this.handleMessage(from, payload),
      report: (to, ok) => {
        if (this.stopped) return;
        this.core.reportSnapshot(to, ok);
        this.scheduleProcess();
      },
      logger: options.logger,
      now: () => this.scheduler.monotonicMs(),
      ...(options.snapshotTransferLimits === undefined ? {} : { limits: options.snapshotTransferLimits }),
    });
    this.barrier = new ReadBarrier({
      scheduler: this.scheduler,
      readIndex: (ctx) => this.core.readIndex(ctx),
      role: () => this.core.role,
      term: () => this.core.currentTerm,
      stopped: () => this.stopped,
      notLeaderError: () => this.notLeaderError(),
      typed: (error) => toWalrus(error),
      waitApplied: (index) => this.waitApplied(index),
      scheduleProcess: () => this.scheduleProcess(),
    });
    // The state machine starts from the durable snapshot; the core re-delivers entries after it.
    const snap = this.storage.snapshot();
    if (snap.meta.index > 0 && snap.data.length > 0) {
      this.state.restore(JSON.parse(textDecoder.decode(snap.data)) as MetadataSnapshot);
    }
  }

  /** Starts ticking. A brand-new bootstrap node campaigns at once instead of waiting a timeout. */
  start(options: { bootstrap: boolean }): void {
    // A restart after a removal whose entry is inside the snapshot: the stored configuration says so.
    this.noteMembership(this.core.status());
    this.timer = this.scheduler.setInterval(() => this.tick(), this.o.tickMs);
    if (options.bootstrap && this.storage.fresh) this.core.campaign();
    this.scheduleProcess();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.scheduler.clearInterval(this.timer);
    this.snapshots.close();
    const error = new WalrusError(ErrorCode.UNAVAILABLE, 'this node is shutting down');
    for (const w of this.waiters.values()) {
      this.scheduler.clearTimeout(w.timer);
      w.reject(error);
    }
    this.waiters.clear();
    this.barrier.failAll(error);
  }

  private tick(): void {
    this.tickCount++;
    this.core.tick();
    this.snapshots.expire();
    if (this.tickCount % 5 === 0) this.maybePromoteLearners();
    this.scheduleProcess();
  }

  status(): RaftStatus {
    return this.core.status();
  }

  /**
   * Set when the last configuration this node applied leaves it out: it was removed (remove-node),
   * and a client request it answered would be served from metadata it no longer receives. Cleared
   * by a configuration that has it again (added back). A joiner that was never in one is not set.
   */
  removedFromCluster = false;

  /** A configuration that leaves this node out (and has members: a joiner's empty one does not count). */
  private noteMembership(conf: {
    readonly voters: readonly number[];
    readonly learners: readonly number[];
  }): void {
    this.removedFromCluster =
      conf.voters.length > 0 && !conf.voters.includes(this.nodeId) && !conf.learners.includes(this.nodeId);
  }

  /** Cheap: read on every client request's routing (status() allocates a whole snapshot). */
  get leaderId(): number {
    return this.core.leaderId;
  }

  get isLeader(): boolean {
    return this.core.role === 'Leader';
  }

  /** Voters this node has heard from within an election timeout (itself always counts). */
  aliveVoters(): number[] {
    const { voters } = this.core.status();
    return voters.filter((id) => {
      if (id === this.nodeId) return true;
      const at = this.heardAtTick.get(id);
      return at !== undefined && this.tickCount - at <= this.o.electionTick;
    });
  }

  /** What METRICS reports of Raft (node/server/metrics-json.ts builds the JSON). */
  metricsStatus(nowMs: number): RaftStatusForMetrics {
    const s = this.core.status();
    const snap = this.storage.snapshot().meta;
    const isLeader = s.state === 'Leader';
    const progress: Record<string, { match: number; next: number; matched: LogPosition | null }> = {};
    for (const [id, p] of Object.entries(s.progress))
      progress[id] = { match: p.match, next: p.next, matched: this.logPosition(p.match) };
    const addresses: Record<string, { raftAddr: string; clientAddr: string }> = {};
    for (const n of this.state.nodes.values())
      addresses[String(n.nodeId)] = { raftAddr: n.raftAddr, clientAddr: n.clientAddr };
    let ackedAtMs: Record<string, number | null> | null = null;
    let quorumAckedAtMs: number | null = null;
    if (isLeader) {
      // A member's ack counts from the moment this node became leader; its own is always now.
      const ackOf = (id: number): number | null => {
        if (id === this.nodeId) return nowMs;
        const at = this.heardAtMs.get(id);
        return at !== undefined && at >= this.leaderSinceMs ? at : null;
      };
      ackedAtMs = {};
      for (const id of Object.keys(s.progress).map(Number)) ackedAtMs[String(id)] = ackOf(id);
      const voterAcks = s.voters
        .map(ackOf)
        .filter((at): at is number => at !== null)
        .sort((a, b) => b - a);
      const q = quorumSize(s.voters.length);
      quorumAckedAtMs = s.voters.length > 0 && voterAcks.length >= q ? voterAcks[q - 1]! : null;
    }
    return {
      state: s.state === 'PreCandidate' ? 'Candidate' : s.state,
      term: s.term,
      vote: s.vote === 0 ? null : s.vote,
      lastIndex: s.lastIndex,
      applied: s.applied,
      leaderId: s.leaderId === 0 ? null : s.leaderId,
      voters: s.voters,
      learners: s.learners,
      snapshot:
        snap.index > 0
          ? { index: snap.index, term: snap.term, leaderId: this.leaderOfTerm.get(snap.term) ?? null }
          : null,
      membershipLogId: this.logPosition(s.confIndex),
      addresses,
      progress,
      ackedAtMs,
      quorumAckedAtMs,
      running: !this.stopped,
      snapshotTransfer: this.snapshots.stats(),
    };
  }

  /** A log index with its term and that term's leader, as far as this node can tell them. */
  private logPosition(index: number): LogPosition | null {
    if (index <= 0) return null;
    const snap = this.storage.snapshot().meta;
    const term = index === snap.index ? snap.term : (this.core.log.term(index) ?? null);
    return { index, term, leaderId: term === null ? null : (this.leaderOfTerm.get(term) ?? null) };
  }

  /**
   * A `snapshotChunk` request from a peer: resolves with the acknowledgement; the last chunk hands
   * the complete, checksummed MsgSnap to handleMessage. Refused chunks reject with a
   * SnapshotTransferError (its code goes back to the sender, which fails the transfer).
   */
  async handleSnapshotChunk(fromNodeId: number, body: Uint8Array): Promise<Uint8Array> {
    if (this.stopped) throw new WalrusError(ErrorCode.UNAVAILABLE, 'this node is shutting down');
    this.heardAtTick.set(fromNodeId, this.tickCount);
    return this.snapshots.receive(fromNodeId, body);
  }

  /** A Raft message from a peer (already authenticated by the transport). */
  handleMessage(fromNodeId: number, payload: Uint8Array): void {
    if (this.stopped) return;
    const decoded = this.o.codec.decode(payload);
    if (!decoded.ok) {
      this.o.logger.warn(
        { from: fromNodeId, err: decoded.error.message },
        'dropped a malformed Raft message',
      );
      return;
    }
    const m = decoded.message;
    if (m.from !== fromNodeId || m.to !== this.nodeId) {
      this.o.logger.warn(
        { from: fromNodeId, claimed: m.from, to: m.to },
        'dropped a Raft message with wrong ids',
      );
      return;
    }
    this.heardAtTick.set(fromNodeId, this.tickCount);
    this.heardAtMs.set(fromNodeId, this.scheduler.nowMs());
    if (!this.state.nodes.has(fromNodeId)) this.lookUpAddresses(fromNodeId);
    try {
      this.core.step(m);
    } catch (error) {
      if (error instanceof RaftError) {
        this.o.logger.warn({ from: fromNodeId, err: error.message }, 'Raft refused a message');
        return;
      }
      throw error;
    }
    this.scheduleProcess();
  }

  /** A peer request: a forwarded proposal, a join, a conf change. Resolves with a JSON reply. */
  async handleRequest(fromNodeId: number, payload: Uint8Array): Promise<Uint8Array> {
    if (payload.length > raftNodeLimits.peerRequestSizeMaxBytes) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'peer request too large');
    }
    let request: PeerRequest;
    try {
      request = JSON.parse(textDecoder.decode(payload)) as PeerRequest;
    } catch {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'peer request is not JSON');
    }
    this.heardAtTick.set(fromNodeId, this.tickCount);
    switch (request.type) {
      case 'propose': {
        const index = await this.proposeHere(request.command);
        return Buffer.from(JSON.stringify({ index }));
      }
      case 'join': {
        if (!isIdentityId(request.incarnation)) {
          throw new WalrusError(ErrorCode.BAD_REQUEST, "a join must carry the joiner's incarnation");
        }
        const { nodeId, raftAddr, clientAddr, incarnation } = request;
        const reply = await this.join({ nodeId, raftAddr, clientAddr, incarnation });
        return Buffer.from(JSON.stringify(reply));
      }
      case 'confChange':
        await this.confChange(request.change);
        return Buffer.from('{}');
      case 'appliedIndex':
        return Buffer.from(JSON.stringify({ index: this.state.appliedIndex }));
      case 'nodes':
        return Buffer.from(JSON.stringify([...this.state.nodes.values()]));
      default:
        throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, 'unknown peer request');
    }
  }

  /**
   * Commits a metadata command through Raft and resolves with its index once it is applied on this
   * node. On a follower the command is forwarded to the leader.
   */
  async propose(command: MetaCommand): Promise<number> {
    const leader = await this.waitForLeader();
    if (leader === this.nodeId) return this.proposeHere(command);
    const reply = await this.o.peers.request(
      leader,
      Buffer.from(JSON.stringify({ type: 'propose', command } satisfies PeerRequest)),
      raftNodeLimits.proposeTimeoutMs,
    );
    const { index } = JSON.parse(reply.toString('utf8')) as { index: number };
    await this.waitApplied(index);
    return index;
  }

  /**
   * A peer sent a Raft message but this node has no address for it: it joined while this node
   * lagged, and the entry that registers it is not applied here yet. This node could not answer it
   * (a new leader's appends would never be acknowledged, and it would never catch up), so it asks
   * another member it can reach for every member's addresses, at most once per election timeout
   * per sender.
   */
  private lookUpAddresses(unknown: number): void {
    const learn = this.o.peers.learn;
    if (learn === undefined || unknown === this.nodeId) return;
    const last = this.addressLookedUpAtTick.get(unknown);
    if (last !== undefined && this.tickCount - last < this.o.electionTick) return;
    if (this.addressLookedUpAtTick.size >= raftNodeLimits.addressLookupCountMax)
      this.addressLookedUpAtTick.clear();
    this.addressLookedUpAtTick.set(unknown, this.tickCount);
    const known = [...this.state.nodes.keys()]
      .filter((id) => id !== this.nodeId && id !== unknown)
      .sort((a, b) => a - b);
    if (known.length === 0) return;
    const asked = known[this.tickCount % known.length]!;
    this.o.peers
      .request(
        asked,
        Buffer.from(JSON.stringify({ type: 'nodes' } satisfies PeerRequest)),
        raftNodeLimits.proposeTimeoutMs,
      )
      .then((reply) => {
        const nodes = JSON.parse(reply.toString('utf8')) as NodeMeta[];
        if (Array.isArray(nodes))
          learn.call(
            this.o.peers,
            nodes.filter((n) => n.nodeId !== this.nodeId),
          );
      })
      .catch((error: unknown) => {
        this.o.logger.warn({ unknown, asked, err: String(error) }, 'could not look up the address of a peer');
      });
  }

  /** Proposes on this node, which must be the leader. */
  private proposeHere(command: MetaCommand): Promise<number> {
    const behind = this.o.prepareProposal === undefined ? null : this.earlierTermsToApply();
    if (behind !== null) return this.waitApplied(behind).then(() => this.prepareAndSubmit(command));
    return this.prepareAndSubmit(command);
  }

  private prepareAndSubmit(command: MetaCommand): Promise<number> {
    const prepared = this.o.prepareProposal?.(command) ?? command;
    return this.submit(() => this.core.propose(Buffer.from(JSON.stringify(prepared))));
  }

  /**
   * A new leader's placement (prepareProposal) reads the applied state, which may still lack
   * entries committed in earlier terms (a leaving mark, say) until an entry of its own term is
   * applied: the index to wait for first (its last; bounded by waitApplied's timeout), or null when
   * there is nothing to wait for (the steady state: it has applied an entry of its term).
   */
  private earlierTermsToApply(): number | null {
    const s = this.core.status();
    if (s.state !== 'Leader' || this.logPosition(this.state.appliedIndex)?.term === s.term) return null;
    return s.lastIndex;
  }

  private submit(run: () => { index: number; term: number }): Promise<number> {
    if (this.stopped)
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, 'this node is shutting down'));
    if (this.waiters.size >= raftNodeLimits.pendingProposalCountMax) {
      return Promise.reject(new WalrusError(ErrorCode.BUSY, 'too many metadata changes in flight'));
    }
    let placed: { index: number; term: number };
    try {
      placed = run();
    } catch (error) {
      return Promise.reject(toWalrus(error));
    }
    this.scheduleProcess();
    return new Promise<number>((resolve, reject) => {
      const timer = this.scheduler.setTimeout(() => {
        this.waiters.delete(placed.index);
        reject(
          new WalrusError(ErrorCode.TIMEOUT, `metadata change at index ${placed.index} not applied in time`),
        );
      }, raftNodeLimits.proposeTimeoutMs);
      this.waiters.set(placed.index, { term: placed.term, resolve, reject, timer });
    });
  }

  /** Waits (bounded) until some leader is known; returns its id. */
  private async waitForLeader(): Promise<number> {
    const deadline = this.scheduler.nowMs() + raftNodeLimits.proposeTimeoutMs;
    for (;;) {
      const leader = this.core.status().leaderId;
      if (leader !== 0) return leader;
      if (this.stopped || this.scheduler.nowMs() > deadline) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          'No Raft leader known; the cluster may have lost quorum',
        );
      }
      await sleep(this.scheduler, this.o.tickMs);
    }
  }

  /** Resolves once this node has applied `index` (bounded by proposeTimeoutMs). */
  waitApplied(index: number): Promise<void> {
    if (this.state.appliedIndex >= index) return Promise.resolve();
    if (this.appliedWaiters.length >= raftNodeLimits.pendingProposalCountMax) {
      return Promise.reject(
        new WalrusError(ErrorCode.BUSY, 'too many callers waiting for metadata to apply'),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { index, resolve: () => {} };
      const timer = this.scheduler.setTimeout(() => {
        const at = this.appliedWaiters.indexOf(entry);
        if (at >= 0) this.appliedWaiters.splice(at, 1);
        reject(
          new WalrusError(ErrorCode.TIMEOUT, `index ${index} not applied on node ${this.nodeId} in time`),
        );
      }, raftNodeLimits.proposeTimeoutMs);
      entry.resolve = () => {
        this.scheduler.clearTimeout(timer);
        resolve();
      };
      this.appliedWaiters.push(entry);
    });
  }

  /**
   * Read-your-writes after a change another node ran: resolves once this node has applied what the
   * Raft leader had applied when asked. A request forwarded to the leader (create a topic, say) is
   * answered once the leader has applied it; without this, the next request on this node could
   * still see the metadata from before it. (Should leadership move in between, the new leader's
   * applied index may lag its log, and the wait is shorter than it should be; never wrong, only
   * weaker.) A node that believes it leads confirms it with a read barrier: a deposed leader that
   * does not know it yet, or a new one whose applied state lags, has nothing to catch up with but
   * itself (it rejects, NOT_LEADER or TIMEOUT, rather than pass on stale state).
   */
  async catchUpWithLeader(): Promise<void> {
    const leader = await this.waitForLeader();
    if (leader === this.nodeId) {
      await this.readBarrier();
      return;
    }
    const reply = await this.o.peers.request(
      leader,
      Buffer.from(JSON.stringify({ type: 'appliedIndex' } satisfies PeerRequest)),
      raftNodeLimits.proposeTimeoutMs,
    );
    const { index } = JSON.parse(reply.toString('utf8')) as { index: number };
    await this.waitApplied(index);
  }

  /**
   * Linearizable-read barrier (Raft ReadIndex): resolves once a quorum has confirmed, after this
   * call, that this node still leads, and this node has applied up to the commit index it had when
   * the round started; state read afterwards includes every write committed before the call.
   * Rejects with NOT_LEADER (with the leader as hint when known) on a node that is not the leader
   * or stops leading before the confirmation, TIMEOUT when no quorum answers within
   * readBarrierLimits.timeoutMs, BUSY beyond readBarrierLimits.waiterCountMax (read-barrier.ts). Callers that arrive before the
   * next round starts (the same turn of the event loop) share it.
   */
  readBarrier(): Promise<void> {
    return this.barrier.wait();
  }

  /** ReadIndex rounds started (each serves every readBarrier caller batched into it). */
  get readIndexRounds(): number {
    return this.barrier.roundCount;
  }

  notLeaderError(): WalrusError {
    const leader = this.core.status().leaderId;
    const known = leader !== 0 && leader !== this.nodeId;
    return new WalrusError(
      ErrorCode.NOT_LEADER,
      `node ${this.nodeId} is not the Raft leader${known ? `; node ${leader} is` : ''}`,
      known
        ? { leaderHint: { nodeId: leader, clientAddr: this.state.nodes.get(leader)?.clientAddr ?? '' } }
        : undefined,
    );
  }

  /** Resolves once the entries this node already knew committed at start-up are applied again. */
  waitLocalReplay(): Promise<void> {
    return this.waitApplied(this.storage.hardState().commit);
  }

  /**
   * Makes sure the metadata holds this node's current addresses and incarnation (retrying while no
   * leader is known). A member registered by an older version gets its incarnation recorded here.
   */
  async ensureRegistered(node: NodeRegistration): Promise<void> {
    for (let attempt = 0; attempt < 600 && !this.stopped; attempt++) {
      const known = this.state.nodes.get(node.nodeId);
      if (known?.incarnation !== undefined && known.incarnation !== node.incarnation) {
        // Cannot happen through the handshake checks; say so rather than retry in vain.
        this.o.logger.error(
          { node, recordedIncarnation: known.incarnation },
          identityMismatchMessage(node.nodeId, node.incarnation, known.incarnation),
        );
        return;
      }
      if (
        known !== undefined &&
        known.raftAddr === node.raftAddr &&
        known.clientAddr === node.clientAddr &&
        known.incarnation === node.incarnation
      )
        return;
      try {
        await this.propose({ type: 'registerNode', node });
        this.o.logger.info({ node }, 'Registered node address');
        return;
      } catch (error) {
        this.o.logger.warn({ err: (error as Error).message }, 'could not register this node yet; retrying');
        await sleep(this.scheduler, 500);
      }
    }
  }

  /**
   * Adds a node: registers its addresses and incarnation, then adds it as a learner (it is promoted
   * once caught up). Refused with IDENTITY_MISMATCH when the id is recorded under another
   * incarnation: the node's data directory was wiped, and the old member must be removed first.
   */
  async join(node: NodeRegistration): Promise<JoinReply> {
    const { nodeId, raftAddr, clientAddr, incarnation } = node;
    assert.ok(isIdentityId(incarnation), 'a joiner presents its incarnation');
    const leader = await this.waitForLeader();
    if (leader !== this.nodeId) {
      const reply = await this.o.peers.request(
        leader,
        Buffer.from(JSON.stringify({ type: 'join', ...node } satisfies PeerRequest)),
        raftNodeLimits.proposeTimeoutMs,
      );
      return JSON.parse(reply.toString('utf8')) as JoinReply;
    }
    this.checkJoinerIdentity(node);
    const known = this.state.nodes.get(nodeId);
    if (
      known === undefined ||
      known.raftAddr !== raftAddr ||
      known.clientAddr !== clientAddr ||
      known.incarnation === undefined
    ) {
      await this.proposeHere({ type: 'registerNode', node: { nodeId, raftAddr, clientAddr, incarnation } });
      this.checkJoinerIdentity(node); // another registration of this id may have been applied first
    }
    const s = this.core.status();
    if (!s.voters.includes(nodeId) && !s.learners.includes(nodeId)) {
      await this.confChange({ type: 'addLearner', nodeId });
      this.o.logger.info({ learner: nodeId }, `Node ${this.nodeId}: Added learner ${nodeId}`);
    }
    // The joiner learns every member's address at once: it must answer the leader before it has
    // applied the log entries that hold those addresses.
    return {
      leaderId: this.nodeId,
      nodes: [...this.state.nodes.values()],
      clusterId: this.state.clusterId ?? this.o.localClusterId?.() ?? null,
    };
  }

  /** Throws IDENTITY_MISMATCH when the metadata records the joiner's id under another incarnation. */
  private checkJoinerIdentity(node: NodeRegistration): void {
    const recorded = this.state.nodes.get(node.nodeId)?.incarnation;
    if (recorded !== undefined && recorded !== node.incarnation) {
      throw new WalrusError(
        ErrorCode.IDENTITY_MISMATCH,
        identityMismatchMessage(node.nodeId, node.incarnation, recorded),
      );
    }
  }

  /** Proposes a configuration change on the leader (forwarded from followers) and waits until applied. */
  async confChange(change: ConfChange): Promise<void> {
    let leader = await this.waitForLeader();
    if (leader === this.nodeId && change.type === 'remove' && change.nodeId === this.nodeId) {
      leader = await this.handLeadershipAway();
    }
    if (leader !== this.nodeId) {
      await this.o.peers.request(
        leader,
        Buffer.from(JSON.stringify({ type: 'confChange', change } satisfies PeerRequest)),
        raftNodeLimits.proposeTimeoutMs,
      );
      return;
    }
    // One change at a time: wait out a pending one (bounded) instead of failing the caller.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.submit(() => this.core.proposeConfChange(change));
        return;
      } catch (error) {
        const pending = error instanceof WalrusError && error.code === ErrorCode.CONF_CHANGE_PENDING;
        if (!pending || attempt >= 50) throw error;
        await sleep(this.scheduler, this.o.tickMs);
      }
    }
  }

  /**
   * A leader asked to remove itself first hands its leadership to the voter whose log is longest
   * and lets that one make the change. Removing itself would commit the change and stop, and a
   * remaining voter that never heard of the commit keeps the old configuration: with two voters it
   * then waits for ever for the removed node's vote (defect J). Returns the new leader.
   */
  async handLeadershipAway(): Promise<number> {
    const deadline = this.scheduler.nowMs() + raftNodeLimits.proposeTimeoutMs;
    for (;;) {
      const s = this.core.status();
      if (s.leaderId !== 0 && s.leaderId !== this.nodeId) return s.leaderId;
      if (s.leaderId === this.nodeId) {
        const target = s.voters
          .filter((id) => id !== this.nodeId)
          .sort((a, b) => (s.progress[b]?.match ?? 0) - (s.progress[a]?.match ?? 0))[0];
        if (target === undefined) {
          throw new WalrusError(ErrorCode.BAD_REQUEST, 'cannot remove the last voter of the cluster');
        }
        this.transferLeadership(target);
      }
      if (this.stopped || this.scheduler.nowMs() > deadline) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `node ${this.nodeId} could not hand its Raft leadership to another voter before its removal; retry`,
        );
      }
      await sleep(this.scheduler, this.o.tickMs);
    }
  }

  /** Leader: promote every learner whose log holds every committed entry. */
  private maybePromoteLearners(): void {
    const s = this.core.status();
    if (s.state !== 'Leader') return;
    for (const learner of s.learners) {
      const p = s.progress[learner];
      if (p === undefined || p.match < s.commit) continue;
      try {
        void this.submit(() => this.core.proposeConfChange({ type: 'promote', nodeId: learner })).then(
          () => this.o.logger.info({ voter: learner }, `Node ${this.nodeId}: Promoted learner ${learner}`),
          () => {},
        );
      } catch {
        // A change is pending or the learner fell behind again: the next check retries.
      }
      return;
    }
  }

  /**
   * Removes a member: the configuration change first (a removed leader steps down once it commits),
   * then its addresses. Returns false when it was not a member.
   */
  async removeNode(nodeId: number): Promise<boolean> {
    const s = this.core.status();
    if (!s.voters.includes(nodeId) && !s.learners.includes(nodeId)) return false;
    if (s.voters.length === 1 && s.voters[0] === nodeId) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'cannot remove the last voter of the cluster');
    }
    await this.confChange({ type: 'remove', nodeId });
    this.o.logger.info({ removed: nodeId }, `Node ${this.nodeId}: Removed node ${nodeId}`);
    // In the background: a removed leader has stepped down and must not hold up the reply.
    void this.propose({ type: 'unregisterNode', nodeId }).catch((error: unknown) => {
      this.o.logger.warn({ nodeId, err: String(error) }, 'removed node stays in the address book');
    });
    return true;
  }

  transferLeadership(to: number): void {
    this.core.transferLeadership(to);
    this.scheduleProcess();
  }

  private scheduleProcess(): void {
    if (this.processScheduled || this.stopped) return;
    this.processScheduled = true;
    this.scheduler.setImmediate(() => {
      this.processScheduled = false;
      this.process();
    });
  }

  /** Honours every pending Ready: persist → send → restore/apply → advance. */
  private process(): void {
    if (this.stopped) return; // a turn scheduled before stop(): nothing may reach the disk after it
    this.barrier.startRound();
    for (let rd = this.core.ready(); rd !== null; rd = this.core.ready()) {
      // 1. Persist (one fdatasync) before any message that depends on it leaves.
      this.storage.persist({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot });
      // 2. Send (a snapshot in chunks: it may be far larger than one peer frame).
      for (const m of rd.messages) {
        if (m.type === MessageType.Snap && m.snapshot !== null) {
          this.snapshots.send(m.to, m.term, m.snapshot.meta.index, () => this.o.codec.encode(m));
        } else {
          this.o.peers.send(m.to, this.o.codec.encode(m));
        }
      }
      // 3. Restore and apply.
      if (rd.snapshot !== null && rd.snapshot.data.length > 0) {
        this.state.restore(JSON.parse(textDecoder.decode(rd.snapshot.data)) as MetadataSnapshot);
        this.state.appliedIndex = rd.snapshot.meta.index;
        this.noteMembership(rd.snapshot.meta.conf);
        this.o.onRestore?.();
      }
      for (const entry of rd.committedEntries) this.applyEntry(entry);
      for (const rs of rd.readStates) this.barrier.confirm(rs.ctx as number, rs.index);
      this.core.advance(rd);
    }
    this.barrier.failLost();
    this.releaseAppliedWaiters();
    this.maybeCompact();
    const leader = this.core.status().leaderId;
    if (leader !== 0) this.noteLeaderOfTerm(this.core.currentTerm, leader);
    if (leader !== this.lastLeaderId) {
      if (leader !== this.nodeId) this.snapshots.abortSends('this node no longer leads');
      this.lastLeaderId = leader;
      this.o.logger.info({ leader, term: this.core.status().term }, 'Raft leader changed');
      this.o.onLeaderChange?.(leader);
    }
  }

  private noteLeaderOfTerm(term: number, leader: number): void {
    if (this.leaderOfTerm.get(term) === leader) return;
    this.leaderOfTerm.set(term, leader);
    if (leader === this.nodeId) this.leaderSinceMs = this.scheduler.nowMs();
    if (this.leaderOfTerm.size > raftNodeLimits.leaderTermCountMax) {
      const oldest = Math.min(...this.leaderOfTerm.keys());
      this.leaderOfTerm.delete(oldest);
    }
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.state.appliedIndex) return; // covered by a snapshot already restored
    if (entry.kind === EntryKind.Normal && entry.data.length > 0) {
      const command = JSON.parse(textDecoder.decode(entry.data)) as MetaCommand;
      this.state.apply(entry.index, command);
      this.o.onApply?.(entry.index, command);
    } else {
      this.state.skip(entry.index);
      if (entry.kind === EntryKind.Conf) {
        const conf = decodeConfEntry(entry.data);
        if (conf !== null) {
          this.o.logger.info({ change: conf.change, conf: conf.conf }, 'Membership changed');
          this.noteMembership(conf.conf);
        }
      }
    }
    const waiter = this.waiters.get(entry.index);
    if (waiter !== undefined) {
      this.waiters.delete(entry.index);
      this.scheduler.clearTimeout(waiter.timer);
      if (waiter.term === entry.term) waiter.resolve(entry.index);
      else {
        waiter.reject(
          new WalrusError(
            ErrorCode.UNAVAILABLE,
            'leadership changed before the metadata change committed; retry',
          ),
        );
      }
    }
  }

  private releaseAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const applied = this.state.appliedIndex;
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const w = this.appliedWaiters[i]!;
      if (w.index <= applied) {
        this.appliedWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private maybeCompact(): void {
    const s = this.core.status();
    if (s.applied - s.snapshotIndex < (this.o.compactEntryCount ?? raftNodeLimits.compactEntryCount)) return;
    assert.equal(this.state.appliedIndex, s.applied, 'the state machine is at the applied index');
    const data = Buffer.from(JSON.stringify(this.state.toSnapshot()));
    const snapshot = this.core.compact(s.applied, data);
    this.storage.installCompaction(snapshot);
    this.o.logger.info(
      { index: snapshot.meta.index, bytes: data.length },
      'Compacted the Raft log into a snapshot',
    );
  }
}

function toWalrus(error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  // Every Raft error code is spelled as an entry of the shared table (checked by the tidy test).
  if (error instanceof RaftError)
    return new WalrusError(isErrorCode(error.code) ? error.code : ErrorCode.INTERNAL, error.message, {
      cause: error,
    });
  return new WalrusError(ErrorCode.INTERNAL, error instanceof Error ? error.message : String(error));
}
