/**
 * RaftCore: one Raft member as a pure, deterministic state machine (after etcd-raft's design).
 * Inputs: step(message), tick(), propose(), proposeConfChange(), transferLeadership(), readIndex(),
 * compact().
 * Output: ready() → a Ready batch (state to persist, messages to send, entries to apply), then
 * advance(ready) once the driver has honoured it. No I/O, clock or randomness of its own: time is
 * ticks and randomness comes from the injected Prng.
 *
 * Configuration changes take effect when APPLIED, as in etcd-raft: a conf entry changes nothing
 * when appended; each node switches to it when the driver has applied it (advance). Elections,
 * votes counted, commit quorums and CheckQuorum use that applied configuration. The leader accepts
 * one change at a time: none until the previous one is applied on the leader, and a new leader
 * none until it has applied every entry it held when elected. A node does not campaign while a
 * committed conf entry is not applied yet. A leader that removes itself keeps leading (counting
 * itself) until it applies the removal, then hands over (TimeoutNow) and steps down. On restart
 * the configuration is rebuilt from the snapshot and the committed conf entries of the log.
 * Roles swap step/tick functions: becomeLeader sets stepLeader and tickHeartbeat, etc.
 */
import assert from 'node:assert/strict';
import { applyConfChange, decodeConfEntry, encodeConfEntry } from './conf-codec.js';
import type { Prng } from './prng.js';
import { validateMessage } from './message-validation.js';
import { Progress } from './progress.js';
import { committedIndex, quorumSize } from './quorum.js';
import { type RaftConfig, validateRaftConfig } from './raft-config.js';
import { RaftError } from './raft-error.js';
import { RaftLog } from './raft-log.js';
import type { RaftStorage } from './storage.js';
import { entryBytes } from './storage.js';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryKind,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type ProgressState,
  type RaftState,
  type ReadContext,
  type ReadState,
  type Snapshot,
} from './types.js';

/**
 * One batch of work for the driver. Obligations, in this order:
 * 1. persist `snapshot`, `entries` and `hardState` durably (fsync) — as one atomic-enough write;
 * 2. only then send `messages` (votes and acks in them depend on step 1);
 * 3. restore the state machine from `snapshot` (if any), then apply `committedEntries` in order;
 * 4. call advance(ready). No other call on the core may happen between ready() and advance().
 */
export interface Ready {
  /** Persist BEFORE sending messages; null when unchanged since the last Ready. */
  readonly hardState: HardState | null;
  /** Append to stable storage BEFORE sending messages, replacing any suffix from entries[0].index. */
  readonly entries: readonly Entry[];
  /** A snapshot from the leader: persist it (it replaces the whole log) BEFORE sending messages, and restore the state machine from it BEFORE applying committedEntries. */
  readonly snapshot: Snapshot | null;
  /** Send only AFTER the state above is durable. Delivery may fail: Raft retries. */
  readonly messages: readonly Message[];
  /** Committed entries to apply, in order, after persisting. Only committed entries appear here. */
  readonly committedEntries: readonly Entry[];
  /**
   * Confirmed ReadIndex requests, in request order: serve each read once the state machine has
   * applied `index` (which may be after this Ready's committedEntries).
   */
  readonly readStates: readonly ReadState[];
  /** True when hardState/entries/snapshot must be fsynced before messages go out. */
  readonly mustSync: boolean;
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
}

export interface RaftStatus {
  readonly id: number;
  readonly state: RaftState;
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
  readonly lastIndex: number;
  readonly applied: number;
  readonly leaderId: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  /** Per member (leader only; empty otherwise). */
  readonly progress: Readonly<Record<number, ProgressStatus>>;
  /** Index of the last snapshot (compacted prefix). */
  readonly snapshotIndex: number;
  /** Index of the entry whose configuration is in effect (the snapshot's index if none is newer). */
  readonly confIndex: number;
  readonly leadTransferee: number;
}

const emptyData = new Uint8Array(0);
const noEntries: readonly Entry[] = [];
const noReadStates: readonly ReadState[] = [];

/** A configuration and the log index (conf entry or snapshot) it comes from. */
interface ConfAt {
  readonly index: number;
  readonly conf: ConfState;
}

export class RaftCore {
  readonly id: number;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  private readonly prng: Prng;

  private term = 0;
  private vote = NONE;
  private lead = NONE;
  private state: RaftState = 'Follower';

  /** The configuration in effect: the last one APPLIED (etcd-raft), not the last one in the log. */
  private voters: number[] = [];
  private learners: number[] = [];
  /**
   * Configurations in effect since the snapshot, oldest first: [0] is the snapshot's, then every
   * applied conf entry above it; the last one is in effect. compact() takes the one at its index.
   */
  private confHistory: ConfAt[];
  /** Conf entries in the log above the one in effect (uncommitted, or committed but not applied yet), oldest first. */
  private unappliedConfs: ConfAt[] = [];

  private readonly progress = new Map<number, Progress>();
  private readonly votes = new Map<number, boolean>();
  private msgs: Message[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Leader: index of the last conf entry (or of the leader's first entry); changes wait until it is applied. */
  private pendingConfIndex = 0;
  private leadTransferee = NONE;
  /** Follower: a TimeoutNow came while a committed conf entry was unapplied; campaign once it is. */
  private transferAfterApply = false;
  private uncommittedBytes = 0;

  /** Leader: ReadIndex requests waiting for a quorum to confirm the leadership, oldest first. */
  private pendingReads: { readonly round: number; readonly index: number; readonly ctx: ReadContext }[] = [];
  /**
   * The last ReadIndex round started. Every heartbeat carries it (in `index`) and the response
   * echoes it, so an ack of round r proves the member was in our term after every request of
   * round <= r was made. Never reset: rounds are unique for this incarnation.
   */
  private readRound = 0;
  /** Leader: per member, the highest round it acknowledged in this term. */
  private readonly readAcked = new Map<number, number>();
  /** Confirmed reads not yet handed out in a Ready. */
  private readStates: ReadState[] = [];

  private prevHardState: HardState;
  private readyOutstanding = false;

  private stepRole: (m: Message) => void;
  private tickRole: () => void;

  constructor(config: RaftConfig, storage: RaftStorage, prng: Prng) {
    this.config = validateRaftConfig(config);
    this.id = config.id;
    this.prng = prng;
    this.log = new RaftLog(storage);
    const hs = storage.hardState();
    const snap = storage.snapshot();
    assert.ok(hs.commit <= storage.lastIndex(), `hard state commit ${hs.commit} beyond the log`);
    this.term = hs.term;
    this.vote = hs.vote;
    this.log.commitTo(hs.commit);
    this.prevHardState = hs;
    // Rebuild the configuration: the snapshot's, then every COMMITTED conf entry of the durable log
    // (in effect again at once: the driver re-applies them, and they were applied before or would
    // have been); conf entries above the commit index wait to be committed and applied.
    this.confHistory = [{ index: snap.meta.index, conf: snap.meta.conf }];
    const last = storage.lastIndex();
    for (let lo = storage.firstIndex(); lo <= last; ) {
      const batch = storage.entries(lo, last + 1, this.config.applyBytesMax);
      for (const e of batch) {
        const conf = confOf(e);
        if (conf === null) continue;
        if (e.index <= hs.commit) this.confHistory.push({ index: e.index, conf });
        else this.unappliedConfs.push({ index: e.index, conf });
      }
      lo += batch.length;
    }
    this.setConf(this.confInEffect().conf);
    this.stepRole = this.stepFollower;
    this.tickRole = this.tickElection;
    this.becomeFollower(this.term, NONE);
  }

  // ---------------------------------------------------------------- public API

  /** Advances logical time by one tick. */
  tick(): void {
    assert.ok(!this.readyOutstanding, 'tick() between ready() and advance()');
    this.tickRole();
  }

  /**
   * Handles one message from a peer. A malformed message throws RaftError(BAD_REQUEST) before any
   * state changes; stale or unexpected messages are ignored.
   */
  step(m: Message): void {
    assert.ok(!this.readyOutstanding, 'step() between ready() and advance()');
    validateMessage(m, this.id);
    this.stepMessage(m);
  }

  /**
   * Starts an election now (PreVote first when enabled), as if the election timeout had fired;
   * used to bootstrap a fresh cluster quickly. No-op on a leader or a non-voter.
   */
  campaign(): void {
    assert.ok(!this.readyOutstanding, 'campaign() between ready() and advance()');
    this.hup(false);
  }

  /** Leader only: appends a command; returns its (index, term). Commit is not guaranteed. */
  propose(data: Uint8Array): { index: number; term: number } {
    if (!(data instanceof Uint8Array)) throw new RaftError('BAD_REQUEST', 'a proposal must be a Uint8Array');
    this.checkCanPropose();
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + data.length > this.config.uncommittedBytesMax) {
      throw new RaftError('BUSY', `uncommitted bytes ${this.uncommittedBytes} at the limit`);
    }
    const e = this.appendEntry(EntryKind.Normal, data);
    this.bcastAppend();
    return { index: e.index, term: e.term };
  }

  /**
   * Leader only: one membership change; it takes effect on each node when that node applies it.
   * Refused while the previous change (or, on a new leader, any entry it had when elected) is
   * not applied on this leader.
   */
  proposeConfChange(change: ConfChange): { index: number; term: number } {
    this.checkCanPropose();
    if (this.pendingConfIndex > this.log.applied) {
      throw new RaftError(
        'CONF_CHANGE_PENDING',
        `configuration change at ${this.pendingConfIndex} not applied yet (applied ${this.log.applied})`,
      );
    }
    assert.equal(this.unappliedConfs.length, 0, 'a leader with nothing pending has no unapplied conf entry');
    const current: ConfState = { voters: this.voters, learners: this.learners };
    const next = applyConfChange(current, change);
    if (typeof next === 'string') throw new RaftError('BAD_CONF_CHANGE', next);
    if (change.type === 'promote') {
      const pr = this.progress.get(change.nodeId);
      if (!pr || pr.match < this.log.committed) {
        throw new RaftError(
          'LEARNER_NOT_CAUGHT_UP',
          `learner ${change.nodeId} has match ${pr?.match ?? 0} < commit ${this.log.committed}`,
        );
      }
    }
    const e = this.appendEntry(EntryKind.Conf, encodeConfEntry({ change, conf: next }));
    this.pendingConfIndex = e.index;
    this.bcastAppend();
    return { index: e.index, term: e.term };
  }

  /**
   * Leader only: a linearizable read point (etcd-raft's ReadIndex, ReadOnlySafe). Records the
   * commit index, broadcasts a heartbeat, and once a quorum of the configuration in effect has
   * acknowledged it in this term, a Ready's `readStates` carries `{ index, ctx }`. If this node
   * stops leading first, the request is dropped (no readState ever comes): callers time out or
   * watch the role. Refused with NOT_LEADER off the leader (followers do not forward),
   * READ_INDEX_NOT_READY until the leader has committed an entry of its term (before that its
   * commit index may lag what earlier leaders committed), and BUSY beyond pendingReadCountMax.
   */
  readIndex(ctx: ReadContext): void {
    assert.ok(!this.readyOutstanding, 'readIndex() between ready() and advance()');
    if (!(ctx instanceof Uint8Array) && !(typeof ctx === 'number' && Number.isFinite(ctx))) {
      throw new RaftError('BAD_REQUEST', 'a read context must be a Uint8Array or a finite number');
    }
    if (this.state !== 'Leader') throw new RaftError('NOT_LEADER', 'not the leader', this.lead);
    if (this.log.term(this.log.committed) !== this.term) {
      throw new RaftError(
        'READ_INDEX_NOT_READY',
        `no entry of term ${this.term} committed yet (commit ${this.log.committed})`,
        this.lead,
      );
    }
    if (this.pendingReads.length >= this.config.pendingReadCountMax) {
      throw new RaftError('BUSY', `${this.pendingReads.length} reads already wait for confirmation`);
    }
    const index = this.log.committed;
    if (this.config.testOnlyBugs?.readIndexWithoutQuorum) {
      this.readStates.push({ index, ctx });
      return;
    }
    this.readRound++;
    this.pendingReads.push({ round: this.readRound, index, ctx });
    this.readAcked.set(this.id, this.readRound);
    this.bcastHeartbeat();
    this.releaseConfirmedReads();
  }

  /** Leader only: hands leadership to a voter once it is caught up (TimeoutNow). */
  transferLeadership(to: number): void {
    if (this.state !== 'Leader') throw new RaftError('NOT_LEADER', 'not the leader', this.lead);
    if (to === this.id) return;
    if (!this.voters.includes(to)) throw new RaftError('BAD_REQUEST', `transfer target ${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send(this.msg(MessageType.TimeoutNow, to));
    else this.sendAppend(to, true);
  }

  /**
   * Builds the snapshot for compacting the log at `index` (<= applied) with the application's
   * state-machine bytes. The driver must install it in storage (dropping entries <= index).
   */
  compact(index: number, data: Uint8Array): Snapshot {
    const first = this.log.storage.firstIndex();
    if (!Number.isSafeInteger(index) || !(data instanceof Uint8Array)) {
      throw new RaftError(
        'BAD_COMPACT_INDEX',
        `compact needs an integer index and bytes, got ${String(index)}`,
      );
    }
    if (index < first || index > this.log.applied || index > this.log.stableLastIndex()) {
      throw new RaftError(
        'BAD_COMPACT_INDEX',
        `compact at ${index} outside [${first}, applied ${this.log.applied}]`,
      );
    }
    const term = this.log.term(index);
    assert.ok(term !== undefined, 'term of an applied entry must be known');
    // The configuration in force at `index`: the last applied one at or below it.
    let keepFrom = 0;
    for (let k = 0; k < this.confHistory.length; k++) if (this.confHistory[k]!.index <= index) keepFrom = k;
    const conf = this.confHistory[keepFrom]!.conf;
    this.confHistory = [{ index, conf }, ...this.confHistory.slice(keepFrom + 1)];
    return { meta: { index, term, conf }, data };
  }

  /** Leader only: the follower did or did not install the snapshot it was sent. */
  reportSnapshot(to: number, ok: boolean): void {
    const pr = this.progress.get(to);
    if (this.state !== 'Leader' || !pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true; // wait for the next heartbeat response before probing
  }

  hasReady(): boolean {
    if (this.msgs.length > 0 || this.log.unstable.length > 0 || this.log.unstableSnapshot) return true;
    if (this.readStates.length > 0) return true;
    if (this.hardStateChanged()) return true;
    return this.log.hasNextCommitted();
  }

  /** The next batch of work, or null when there is none. Must be followed by advance(). */
  ready(): Ready | null {
    assert.ok(!this.readyOutstanding, 'ready() twice without advance()');
    if (!this.hasReady()) return null;
    const hardState = this.hardStateChanged() ? this.hardState() : null;
    const entries = this.log.unstable.length > 0 ? this.log.unstable.slice() : noEntries;
    const snapshot = this.log.unstableSnapshot;
    const committedEntries = this.log.hasNextCommitted()
      ? this.log.nextCommitted(this.config.applyBytesMax)
      : noEntries;
    const messages = this.msgs;
    this.msgs = [];
    const readStates = this.readStates.length > 0 ? this.readStates : noReadStates;
    this.readStates = [];
    this.readyOutstanding = true;
    return {
      hardState,
      entries,
      snapshot,
      messages,
      committedEntries,
      readStates,
      mustSync: hardState !== null || entries.length > 0 || snapshot !== null,
    };
  }

  /** The driver honoured `rd` (persisted, sent, applied). */
  advance(rd: Ready): void {
    assert.ok(this.readyOutstanding, 'advance() without ready()');
    this.readyOutstanding = false;
    const storage = this.log.storage;
    if (rd.snapshot) {
      assert.ok(storage.firstIndex() - 1 >= rd.snapshot.meta.index, 'advance: snapshot not persisted');
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      assert.ok(storage.term(last.index) === last.term, `advance: entry ${last.index} not persisted`);
    }
    if (rd.hardState) {
      const hs = storage.hardState();
      assert.ok(
        hs.term === rd.hardState.term && hs.vote === rd.hardState.vote && hs.commit === rd.hardState.commit,
        'advance: hard state not persisted',
      );
      this.prevHardState = rd.hardState;
    }
    this.log.stableAll();
    if (rd.committedEntries.length > 0) {
      const lastApplied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      assert.ok(lastApplied <= this.log.committed, 'applied beyond commit');
      this.log.applied = lastApplied;
      this.applyConfEntries(rd.committedEntries);
    }
    if (this.transferAfterApply && !this.committedConfUnapplied()) {
      this.transferAfterApply = false;
      if (this.state === 'Follower') this.hup(true);
    }
    if (this.state === 'Leader') {
      const self = this.progress.get(this.id);
      if (self) self.maybeUpdate(this.log.stableLastIndex());
      if (this.maybeCommit()) this.bcastAppend();
    }
  }

  status(): RaftStatus {
    const progress: Record<number, ProgressStatus> = {};
    if (this.state === 'Leader') {
      for (const [id, pr] of this.progress)
        progress[id] = { match: pr.match, next: pr.next, state: pr.state };
    }
    return {
      id: this.id,
      state: this.state,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      lastIndex: this.log.lastIndex(),
      applied: this.log.applied,
      leaderId: this.lead,
      voters: this.voters.slice(),
      learners: this.learners.slice(),
      progress,
      snapshotIndex: this.log.firstIndex() - 1,
      confIndex: this.confInEffect().index,
      leadTransferee: this.leadTransferee,
    };
  }

  /** Cheap accessors for drivers and the simulator (no allocation). */
  get currentTerm(): number {
    return this.term;
  }
  get role(): RaftState {
    return this.state;
  }
  get leaderId(): number {
    return this.lead;
  }
  get votedFor(): number {
    return this.vote;
  }
  isVoter(id: number): boolean {
    return this.voters.includes(id);
  }
  progressOf(id: number): ProgressStatus | undefined {
    const pr = this.progress.get(id);
    return pr && { match: pr.match, next: pr.next, state: pr.state };
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, lead: number): void {
    this.stepRole = this.stepFollower;
    this.tickRole = this.tickElection;
    this.reset(term);
    this.lead = lead;
    this.state = 'Follower';
  }

  private becomePreCandidate(): void {
    assert.ok(this.state !== 'Leader', 'leader cannot become pre-candidate');
    // The term does not change and no vote is cast: a lost pre-vote disturbs nobody.
    this.stepRole = this.stepCandidate;
    this.tickRole = this.tickElection;
    this.votes.clear();
    this.lead = NONE;
    this.state = 'PreCandidate';
  }

  private becomeCandidate(): void {
    assert.ok(this.state !== 'Leader', 'leader cannot become candidate');
    this.stepRole = this.stepCandidate;
    this.tickRole = this.tickElection;
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'Candidate';
  }

  private becomeLeader(): void {
    assert.ok(this.state === 'Candidate', 'only a candidate becomes leader');
    this.stepRole = this.stepLeader;
    this.tickRole = this.tickHeartbeat;
    this.reset(this.term);
    this.lead = this.id;
    this.state = 'Leader';
    assert.ok(this.voters.includes(this.id), 'only a voter of the configuration in effect leads');
    const self = this.progress.get(this.id);
    if (self) {
      self.maybeUpdate(this.log.stableLastIndex());
      self.becomeReplicate();
    }
    // The empty entry commits the previous terms' entries (§5.4.2) and, until it is applied,
    // blocks configuration changes (etcd-raft; the dissertation's single-server-change fix): every
    // conf entry this leader inherited takes effect before it proposes another.
    const e = this.appendEntry(EntryKind.Normal, emptyData);
    this.pendingConfIndex = e.index;
    this.uncommittedBytes = 0;
    this.bcastAppend();
  }

  private reset(term: number): void {
    if (this.term !== term) {
      assert.ok(term > this.term, `term must not go backwards (${this.term} → ${term})`);
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.config.electionTick + this.prng.nextInt(this.config.electionTick);
    this.leadTransferee = NONE;
    this.transferAfterApply = false;
    this.votes.clear();
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.progress.clear();
    // Reads waiting for confirmation die with the role or term; confirmed ones (readStates) stand.
    this.pendingReads = [];
    this.readAcked.clear();
    for (const id of this.voters) this.addProgress(id);
    for (const id of this.learners) this.addProgress(id);
  }

  private addProgress(id: number): void {
    const pr = new Progress(
      this.log.lastIndex() + 1,
      this.config.inflightMsgCountMax,
      this.config.inflightBytesMax,
    );
    if (id === this.id) pr.match = this.log.stableLastIndex();
    pr.recentActive = id === this.id;
    this.progress.set(id, pr);
  }

  /**
   * May this node campaign? Only a voter of the configuration in effect, and (as etcd-raft's hup)
   * only once every committed conf entry is applied: a node that knows a newer configuration is
   * committed must not win an election under the older one.
   */
  private promotable(): boolean {
    return this.voters.includes(this.id) && !this.committedConfUnapplied();
  }

  private committedConfUnapplied(): boolean {
    const next = this.unappliedConfs[0];
    return next !== undefined && next.index <= this.log.committed;
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTick) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
      }
      this.leadTransferee = NONE; // a transfer that took an election timeout is abandoned
    }
    for (const [id, pr] of this.progress) {
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.config.snapshotTimeoutTick) {
        pr.pendingSnapshot = 0; // presumed lost: probe from the last known match
        pr.becomeProbe();
        this.sendAppend(id, true);
      }
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      if (pr && (pr.recentActive || id === this.id)) active++;
    }
    return active >= quorumSize(this.voters.length);
  }

  // ---------------------------------------------------------------- elections

  private hup(transfer: boolean): void {
    if (this.state === 'Leader' || !this.promotable()) return;
    if (this.config.preVote && !transfer) this.startCampaign(MessageType.PreVote, false);
    else this.startCampaign(MessageType.Vote, transfer);
  }

  private startCampaign(type: typeof MessageType.PreVote | typeof MessageType.Vote, transfer: boolean): void {
    let term: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (type === MessageType.PreVote) this.startCampaign(MessageType.Vote, transfer);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send({ ...this.msg(type, id), term, index: lastIndex, logTerm: lastTerm, transfer });
    }
  }

  private poll(from: number, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = quorumSize(this.voters.length);
    if (yes >= q) return 'won';
    if (this.voters.length - no < q) return 'lost';
    return 'pending';
  }

  // ---------------------------------------------------------------- step

  private stepMessage(m: Message): void {
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const inLease =
          this.config.checkQuorum && this.lead !== NONE && this.electionElapsed < this.config.electionTick;
        // Leader lease: with a live leader we ignore (pre)votes, so a removed or partitioned node
        // cannot depose it. A leader transfer is the exception.
        if (inLease && !m.transfer) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote asks about a future term: it does not move ours.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes carry the term we would campaign in.
      } else if (
        m.type === MessageType.App ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snap
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      // A stale request is rejected with our term (§5.1): a stale leader steps down, and a stale
      // candidate catches up on the term — otherwise a candidate that only ever talks to nodes of
      // higher terms (e.g. after configurations diverged) could campaign below them forever.
      if (m.type === MessageType.App || m.type === MessageType.Heartbeat) {
        this.send(this.msg(MessageType.AppResp, m.from));
      } else if (m.type === MessageType.PreVote) {
        this.send({ ...this.msg(MessageType.PreVoteResp, m.from), reject: true });
      } else if (m.type === MessageType.Vote) {
        this.send({ ...this.msg(MessageType.VoteResp, m.from), reject: true });
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      const canVote =
        this.vote === m.from ||
        (this.vote === NONE && this.lead === NONE) ||
        (m.type === MessageType.PreVote && m.term > this.term);
      const upToDate =
        this.config.testOnlyBugs?.grantVoteIgnoringLog || this.log.isUpToDate(m.index, m.logTerm);
      const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
      if (canVote && upToDate) {
        // The response carries the candidate's term so a pre-candidate counts it (§9.6).
        this.send({ ...this.msg(respType, m.from), term: m.term });
        if (m.type === MessageType.Vote) {
          this.electionElapsed = 0;
          this.vote = m.from;
        }
      } else {
        this.send({ ...this.msg(respType, m.from), reject: true });
      }
      return;
    }
    this.stepRole(m);
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        if (m.reject) this.handleAppReject(m, pr);
        else this.handleAppAck(m, pr);
        return;
      case MessageType.HeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        if (m.index > (this.readAcked.get(m.from) ?? 0)) {
          this.readAcked.set(m.from, m.index);
          this.releaseConfirmedReads();
        }
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        if (this.leadTransferee === m.from && pr.match === this.log.lastIndex()) {
          this.send(this.msg(MessageType.TimeoutNow, m.from));
        }
        return;
      default:
        return; // votes of a finished election, or another leader's traffic in our term: ignore
    }
  }

  private handleAppReject(m: Message, pr: Progress): void {
    let hint = m.rejectHint;
    if (m.logTerm > 0)
      hint = this.log.findConflictByTerm(Math.min(m.rejectHint, this.log.lastIndex()), m.logTerm).index;
    if (pr.maybeDecrTo(m.index, hint)) {
      if (pr.state === 'replicate') pr.becomeProbe();
      this.sendAppend(m.from, true);
    }
  }

  private handleAppAck(m: Message, pr: Progress): void {
    if (m.index > this.log.lastIndex()) return; // acks for entries we never had: ignore
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
    else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
    if (this.maybeCommit()) {
      this.bcastAppend();
      if (this.state !== 'Leader') return;
    } else if (wasPaused) {
      // While paused it may have missed the latest commit index: send it (even with no entries).
      this.sendAppend(m.from, true);
    }
    while (this.sendAppend(m.from, false)) {
      // keep filling the in-flight window
    }
    if (this.leadTransferee === m.from && pr.match === this.log.lastIndex()) {
      this.send(this.msg(MessageType.TimeoutNow, m.from));
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        const wanted = this.state === 'PreCandidate' ? MessageType.PreVoteResp : MessageType.VoteResp;
        if (m.type !== wanted) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.state === 'PreCandidate') this.startCampaign(MessageType.Vote, false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // Not before a committed change is applied (see promotable); the driver may step this
        // before it handles the Ready that applies it (a removed leader's commit and TimeoutNow
        // arrive together), so the transfer waits for that apply instead of being lost.
        if (this.voters.includes(this.id) && this.committedConfUnapplied()) this.transferAfterApply = true;
        else this.hup(true);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- follower handlers

  private handleAppend(m: Message): void {
    const log = this.log;
    if (m.index < log.committed) {
      this.send({ ...this.msg(MessageType.AppResp, m.from), index: log.committed });
      return;
    }
    if (log.matchTerm(m.index, m.logTerm)) {
      const lastNew = m.index + m.entries.length;
      const ci = log.findConflict(m.entries);
      if (ci !== 0) {
        assert.ok(ci > log.committed, `entry ${ci} conflicts with committed ${log.committed}`);
        this.appendFollowerEntries(m.entries.slice(ci - m.index - 1));
      }
      log.commitTo(Math.min(m.commit, lastNew));
      this.send({ ...this.msg(MessageType.AppResp, m.from), index: lastNew });
      return;
    }
    const hintIndex = Math.min(m.index, log.lastIndex());
    const hint = log.findConflictByTerm(hintIndex, m.logTerm);
    this.send({
      ...this.msg(MessageType.AppResp, m.from),
      index: m.index,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    });
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    // Echo the leader's read round: the ack confirms its leadership for the reads up to it.
    this.send({ ...this.msg(MessageType.HeartbeatResp, m.from), index: m.index });
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot!;
    const log = this.log;
    const idx = snap.meta.index;
    if (idx <= log.committed) {
      this.send({ ...this.msg(MessageType.AppResp, m.from), index: log.committed });
      return;
    }
    if (log.matchTerm(idx, snap.meta.term)) {
      // We already hold the covered entries: just fast-forward the commit.
      log.commitTo(idx);
      this.send({ ...this.msg(MessageType.AppResp, m.from), index: log.committed });
      return;
    }
    log.restore(snap);
    this.confHistory = [{ index: idx, conf: snap.meta.conf }];
    this.unappliedConfs = [];
    this.setConf(snap.meta.conf);
    this.send({ ...this.msg(MessageType.AppResp, m.from), index: log.lastIndex() });
  }

  // ---------------------------------------------------------------- leader replication

  private checkCanPropose(): void {
    assert.ok(!this.readyOutstanding, 'propose between ready() and advance()');
    if (this.state !== 'Leader') throw new RaftError('NOT_LEADER', 'not the leader', this.lead);
    if (this.leadTransferee !== NONE) {
      throw new RaftError(
        'TRANSFER_IN_PROGRESS',
        `leadership is moving to ${this.leadTransferee}`,
        this.lead,
      );
    }
  }

  private appendEntry(kind: EntryKind, data: Uint8Array): Entry {
    const e: Entry = { term: this.term, index: this.log.lastIndex() + 1, kind, data };
    this.log.append([e]);
    this.uncommittedBytes += data.length;
    const conf = confOf(e);
    if (conf !== null) this.unappliedConfs.push({ index: e.index, conf });
    return e;
  }

  private appendFollowerEntries(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0]!.index;
    // A truncated (never committed) conf entry simply never takes effect.
    const pending = this.unappliedConfs;
    while (pending.length > 0 && pending[pending.length - 1]!.index >= from) pending.pop();
    this.log.append(ents);
    for (const e of ents) {
      const conf = confOf(e);
      if (conf !== null) pending.push({ index: e.index, conf });
    }
  }

  private confInEffect(): ConfAt {
    return this.confHistory[this.confHistory.length - 1]!;
  }

  /** The driver applied `ents`: the conf entries among them take effect now, in order. */
  private applyConfEntries(ents: readonly Entry[]): void {
    const pending = this.unappliedConfs;
    let changed = false;
    for (const e of ents) {
      if (e.kind !== EntryKind.Conf || e.index <= this.confInEffect().index) continue; // re-applied after a restart
      const next = pending[0];
      if (next === undefined || next.index !== e.index) continue; // a corrupt local entry: ignored, as on receipt
      pending.shift();
      this.confHistory.push(next);
      changed = true;
    }
    if (!changed) return;
    const before = new Set([...this.voters, ...this.learners]);
    this.setConf(this.confInEffect().conf);
    if (this.state === 'Leader') this.leaderSwitchedConf(before);
  }

  private setConf(conf: ConfState): void {
    this.voters = conf.voters.slice();
    this.learners = conf.learners.slice();
  }

  /**
   * The leader applied a new configuration: track the new members, tell removed ones the commit
   * index (so they apply their removal and stop campaigning), and count quorums anew. A leader
   * that removed itself kept leading, counting itself, until now: it hands over and steps down.
   */
  private leaderSwitchedConf(before: ReadonlySet<number>): void {
    const members = new Set([...this.voters, ...this.learners]);
    for (const id of members) if (!this.progress.has(id)) this.addProgress(id);
    for (const [id, pr] of [...this.progress]) {
      if (members.has(id)) continue;
      if (id !== this.id) {
        this.send({ ...this.msg(MessageType.Heartbeat, id), commit: Math.min(pr.match, this.log.committed) });
      }
      this.progress.delete(id);
    }
    if (this.leadTransferee !== NONE && !this.voters.includes(this.leadTransferee))
      this.leadTransferee = NONE;
    if (!this.voters.includes(this.id)) {
      this.stepDownRemoved();
      return;
    }
    this.releaseConfirmedReads(); // a smaller quorum may confirm them now
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of members) if (!before.has(id)) this.sendAppend(id, true);
  }

  /** Advances commit to the highest index replicated on a quorum of voters, if of this term. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      matches.push(pr ? pr.match : 0);
    }
    if (matches.length === 0) return false;
    const mci = committedIndex(matches);
    if (mci <= this.log.committed) return false;
    const sameTerm = this.log.term(mci) === this.term;
    if (!sameTerm && !this.config.testOnlyBugs?.commitOldTermByCounting) return false;
    assert.ok(mci <= this.log.lastIndex(), 'quorum match beyond the leader log');
    const before = this.log.committed;
    this.log.commitTo(mci);
    this.releaseUncommitted(before, mci);
    return true;
  }

  private releaseUncommitted(from: number, to: number): void {
    if (this.uncommittedBytes === 0) return;
    const lo = Math.max(from + 1, this.log.firstIndex());
    for (const e of this.log.slice(lo, to + 1, Number.MAX_SAFE_INTEGER))
      this.uncommittedBytes -= e.data.length;
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
  }

  /**
   * A leader that applied its own removal (its commit went out when it advanced): hands over to
   * the most caught-up voter and steps down.
   */
  private stepDownRemoved(): void {
    let best = NONE;
    let bestMatch = -1;
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      if (pr && pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    if (best !== NONE && bestMatch === this.log.lastIndex())
      this.send(this.msg(MessageType.TimeoutNow, best));
    this.becomeFollower(this.term, NONE);
  }

  private bcastAppend(): void {
    if (this.state !== 'Leader') return;
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  private bcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send({
        ...this.msg(MessageType.Heartbeat, id),
        commit: Math.min(pr.match, this.log.committed),
        index: this.readRound,
      });
    }
  }

  /** Hands out (as readStates) every pending read whose round a quorum of voters has acknowledged. */
  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    const acked = this.voters.map((id) => this.readAcked.get(id) ?? 0);
    const confirmed = committedIndex(acked);
    let k = 0;
    while (k < this.pendingReads.length && this.pendingReads[k]!.round <= confirmed) {
      const { index, ctx } = this.pendingReads[k]!;
      this.readStates.push({ index, ctx });
      k++;
    }
    if (k > 0) this.pendingReads.splice(0, k);
  }

  /** Sends the next App (or a snapshot) to `to`; returns true if something was sent. */
  private sendAppend(to: number, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) return this.sendSnapshot(to, pr);
    const last = this.log.lastIndex();
    const entries =
      pr.next <= last ? this.log.slice(pr.next, last + 1, this.config.appendBytesMax) : noEntries;
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      ...this.msg(MessageType.App, to),
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
    });
    if (entries.length > 0 && pr.state === 'replicate') {
      let bytes = 0;
      for (const e of entries) bytes += entryBytes(e);
      const lastSent = entries[entries.length - 1]!.index;
      pr.next = lastSent + 1;
      pr.inflights.add(lastSent, bytes);
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: number, pr: Progress): boolean {
    const snap = this.log.storage.snapshot();
    pr.becomeSnapshot(snap.meta.index);
    this.send({ ...this.msg(MessageType.Snap, to), snapshot: snap });
    return true;
  }

  // ---------------------------------------------------------------- messages

  private msg(type: MessageType, to: number): Message {
    return {
      type,
      from: this.id,
      to,
      term: this.term,
      logTerm: 0,
      index: 0,
      entries: noEntries,
      commit: 0,
      reject: false,
      rejectHint: 0,
      snapshot: null,
      transfer: false,
    };
  }

  private send(m: Message): void {
    if (this.msgs.length >= this.config.outboxCountMax) return; // bounded: Raft tolerates loss
    this.msgs.push(m);
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const p = this.prevHardState;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.log.committed;
  }
}

/** The configuration a conf entry carries, or null (not a conf entry; a corrupt local one is ignored, not fatal: entries are validated on receipt). */
function confOf(e: Entry): ConfState | null {
  if (e.kind !== EntryKind.Conf) return null;
  return decodeConfEntry(e.data)?.conf ?? null;
}
