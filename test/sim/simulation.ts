/**
 * Deterministic Raft simulator: N RaftCores driven by one seeded event queue, a simulated network
 * (per-link drop, delay, duplicate, reorder, one-way partitions) and a disk model where only what a
 * Ready told the driver to persist survives a crash — and a crash in the middle of handling a
 * Ready keeps only a prefix of it. A random workload proposes, changes membership (add learner,
 * promote, remove — the leader too), transfers leadership, compacts, crashes and restarts nodes and
 * partitions the network. Invariants (invariants.ts) run after every event. Then liveness mode
 * heals everything and requires a leader and a committed proposal within a bound of ticks.
 *
 * Everything derives from `seed`: the same seed replays the same run bit for bit.
 */
import {
  type ConfChange,
  ConfChangeType,
  decodeConfEntry,
  EntryKind,
  MemoryStorage,
  type Message,
  makeRaftConfig,
  Prng,
  RaftCore,
  RaftError,
  type RaftTestOnlyBugs,
  type Ready,
  type Snapshot,
} from '../../node/raft/index.js';
import { EventQueue } from './event-queue.js';
import { entryKey, InvariantViolation, Invariants, mixHash, promotedLearner } from './invariants.js';

export interface SimOptions {
  readonly seed: number;
  /** Events in the fault phase (each tick, delivery or workload action is one event). */
  readonly events: number;
  /** Run liveness mode after the fault phase. Default true. */
  readonly liveness?: boolean;
  /** TEST ONLY: inject a known bug into every core. */
  readonly bugs?: RaftTestOnlyBugs;
  /** TEST ONLY: the driver sends a Ready's messages before persisting it (breaks the Ready contract). */
  readonly unsafeSendBeforePersist?: boolean;
  /** TEST ONLY: turn off the PersistBeforeSend check, to see what the broken order leads to. */
  readonly skipPersistCheck?: boolean;
  /** Overrides the seed-derived probability of a crash while a Ready is being persisted. */
  readonly midReadyCrashRate?: number;
  /** Debugging aid: receives one line per message sent. */
  readonly trace?: (line: string) => void;
  /** Debugging aid: sees every message sent. */
  readonly onMessage?: (m: Message) => void;
  /** Pins some of the seed-derived options (scripted scenarios need, e.g., three voters). */
  readonly derivedOverrides?: Partial<DerivedOptions>;
  /**
   * A scripted scenario instead of the random workload: the script drives the world through
   * `SimControl` (every invariant still runs after every event), then liveness mode runs as usual.
   */
  readonly script?: (ctl: SimControl) => void;
}

/** What a scripted scenario may do; each call steps the simulated world deterministically. */
export interface SimControl {
  readonly derived: DerivedOptions;
  /** The running node that leads the highest term, if any. */
  leader(): number | undefined;
  core(id: number): RaftCore | null;
  /** Runs events until `cond` holds; fails the run (as a Simulator violation) after `eventsMax`. */
  runUntil(what: string, cond: () => boolean, eventsMax?: number): void;
  /** Runs events for `ticks` node ticks of simulated time. */
  runFor(ticks: number): void;
  /** Cuts every link to and from `id`. */
  isolate(id: number): void;
  /** Ends every partition and link filter (crashed nodes stay down). */
  healLinks(): void;
  /** Drops every message for which `drop` returns true, until healLinks(). */
  dropWhere(drop: (m: Message) => boolean): void;
  /** Stops `id` for good: it does not restart, not even in liveness mode. */
  killForGood(id: number): void;
  /** `leaderId` proposes adding a fresh node as a learner; returns the new id. */
  addLearner(leaderId: number): number;
  proposeConfChange(id: number, change: ConfChange): void;
  campaign(id: number): void;
}

/** Options drawn from the seed; printed with every failure ("a seed is necessary, not sufficient"). */
export interface DerivedOptions {
  readonly initialVoters: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly inflightMsgCountMax: number;
  readonly appendBytesMax: number;
  readonly midReadyCrashRate: number;
  readonly actionGapMax: number;
  /** Liveness mode keeps one voter down for good (when every configuration has >= 3 voters). */
  readonly livenessKeepOneDown: boolean;
}

export interface SimStats {
  events: number;
  ticks: number;
  delivered: number;
  dropped: number;
  proposals: number;
  /** ReadIndex requests accepted by a (believed) leader, and read states it handed out. */
  readsRequested: number;
  readsConfirmed: number;
  confChanges: number;
  transfers: number;
  compactions: number;
  crashes: number;
  snapshotsSent: number;
  maxTerm: number;
  maxCommitted: number;
  badMessages: number;
  /** Ticks from healing to the first committed proposal in liveness mode. */
  livenessTicks: number;
  /** The bound (livenessBoundTicks), counted from the last disturbance (the heal or later). */
  livenessBoundTicks: number;
  /** Ticks from healing until the leader whose proposal committed proposed it (was elected). */
  livenessElectedTicks: number;
  invariantChecks: number;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation?: string;
  readonly derived: DerivedOptions;
  readonly stats: SimStats;
}

/** Time units per node tick; message delays are a few units, i.e. below one tick. */
const tickUnits = 10;
/** Readies handled per node per event (a bound; the core produces one or two). */
const readyLoopMax = 64;
/** Nodes ever created in one run (joins make new ids; ids are never reused). */
const nodeCountMax = 16;
/** Pending events (messages in flight, ticks, actions); beyond it the run fails as a simulator bug. */
const queueSizeMax = 1_000_000;
/**
 * Liveness bound, derived from the schedule (see livenessBoundTicks). Elections: this many election
 * timeouts (electionTick ticks each). A round of elections (at most 2 × electionTick: timeouts are
 * random in [E, 2E)) elects a leader unless a second voter times out within one round trip (< 1
 * tick in calm weather) of the first, or the first one's log is too old to win; PreVote and
 * CheckQuorum add a round at most (a pre-vote before the vote, a lease to expire). Each round is
 * an independent draw of timeouts, so failures in a row get geometrically rarer. Measured over
 * seeds 1..10,000 × 5,000 events (stats.livenessElectedTicks): the leader that committed was
 * elected within 1 timeout in 92% of runs, and the count of runs halves or better with each
 * further timeout up to the worst, 11.5 timeouts. 60 (30 worst-case rounds) leaves a margin of
 * some 48 halvings: a failure here is a livelock, not bad luck.
 */
const livenessElectionTimeouts = 60;
/** Messages sent before the heal may still be on their way: the longest simulated delay, in ticks. */
const longDelayTicks = 8;

interface LinkWeather {
  readonly dropRate: number;
  readonly dupRate: number;
  /** Normal delays are uniform in [1, delayMax] time units (so messages reorder). */
  readonly delayMax: number;
  /** Probability of a long delay (up to 8 ticks): stale messages arriving late. */
  readonly longDelayRate: number;
}

const calmWeather: LinkWeather = { dropRate: 0, dupRate: 0, delayMax: 4, longDelayRate: 0 };

type SimEvent =
  | { time: number; seq: number; kind: 'tick'; node: number; epoch: number }
  | { time: number; seq: number; kind: 'deliver'; msg: Message }
  | { time: number; seq: number; kind: 'action' }
  | { time: number; seq: number; kind: 'restart'; node: number };

class SimNode {
  core: RaftCore | null = null;
  /** Bumped on each start so tick events of an earlier incarnation are ignored. */
  epoch = 0;
  smIndex = 0;
  smHash = 0;
  /** Indexes of conf entries in the durable log (for AtMostOneUncommittedConf). */
  confIdx: number[] = [];
  decommissioned = false;
  /** Liveness mode: this voter stays down for good. */
  keepDown = false;
  /** Highest commit index checked by QuorumLogInv while this node led. */
  leaderCommitChecked = 0;
  restartPending = false;
  constructor(
    readonly id: number,
    readonly storage: MemoryStorage,
  ) {}
}

export function deriveOptions(seed: number): DerivedOptions {
  const p = new Prng(seed ^ 0x5eed);
  const electionTick = [4, 6, 8, 10][p.nextInt(4)]!;
  return {
    initialVoters: [1, 3, 3, 3, 5, 5][p.nextInt(6)]!,
    electionTick,
    heartbeatTick: 1 + p.nextInt(Math.min(2, electionTick - 1)),
    preVote: p.chance(0.8),
    checkQuorum: p.chance(0.8),
    inflightMsgCountMax: [1, 4, 64][p.nextInt(3)]!,
    appendBytesMax: [64, 256, 4096][p.nextInt(3)]!,
    midReadyCrashRate: [0, 0.001, 0.01][p.nextInt(3)]!,
    actionGapMax: [5, 20, 60][p.nextInt(3)]!,
    livenessKeepOneDown: p.chance(0.5),
  };
}

export function replayCommand(seed: number, events: number): string {
  return `SEED=${seed} SIM_EVENTS=${events} npm run test:sim`;
}

export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  try {
    sim.run();
    return { seed: opts.seed, ok: true, derived: sim.d, stats: sim.finishStats() };
  } catch (err) {
    if (!(err instanceof InvariantViolation) && !(err instanceof Error)) throw err;
    const kind = err instanceof InvariantViolation ? 'invariant' : 'crash';
    const violation = `${kind} ${err.message} at time ${sim.now} after ${sim.stats.events} events${
      err instanceof InvariantViolation ? '' : `\n${err.stack ?? ''}`
    }`;
    return { seed: opts.seed, ok: false, violation, derived: sim.d, stats: sim.finishStats() };
  }
}

class Simulation {
  readonly d: DerivedOptions;
  readonly stats: SimStats = {
    events: 0,
    ticks: 0,
    delivered: 0,
    dropped: 0,
    proposals: 0,
    readsRequested: 0,
    readsConfirmed: 0,
    confChanges: 0,
    transfers: 0,
    compactions: 0,
    crashes: 0,
    snapshotsSent: 0,
    maxTerm: 0,
    maxCommitted: 0,
    badMessages: 0,
    livenessTicks: 0,
    livenessBoundTicks: 0,
    livenessElectedTicks: 0,
    invariantChecks: 0,
  };
  now = 0;
  private readonly prng: Prng;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<number, SimNode>();
  private readonly inv: Invariants = new Invariants();
  private nextNodeId: number;
  private proposalSeq = 0;
  private readSeq = 0;
  private readonly toDecommission: number[] = [];

  // network weather: global, overridden per directed link
  private weather: LinkWeather = calmWeather;
  private readonly linkWeather = new Map<number, LinkWeather>();
  /** Blocked directed links "from>to" (one-way partitions are single entries). */
  private readonly blocked = new Set<number>();
  /** Scripted scenarios: messages this returns true for are dropped. */
  private dropFilter: ((m: Message) => boolean) | null = null;

  // liveness
  private healed = false;
  private healedAt = 0;
  /** Liveness mode: when the schedule last disturbed the cluster (the heal, a member stopped). */
  private lastDisturbanceAt = 0;
  /** Liveness markers proposed: payload key → when (a leader proposes one as soon as it is elected). */
  private readonly markerKeys = new Map<number, number>();
  private markerTerm = -1;
  private markerCommitted = false;

  constructor(readonly opts: SimOptions) {
    const derived = { ...deriveOptions(opts.seed), ...opts.derivedOverrides };
    this.d =
      opts.midReadyCrashRate === undefined
        ? derived
        : { ...derived, midReadyCrashRate: opts.midReadyCrashRate };
    this.prng = new Prng(opts.seed);
    const voters = Array.from({ length: this.d.initialVoters }, (_, k) => k + 1);
    this.nextNodeId = voters.length + 1;
    for (const id of voters) {
      const n = new SimNode(id, new MemoryStorage({ voters, learners: [] }));
      this.nodes.set(id, n);
      this.start(n);
    }
    if (!opts.script) this.queue.push({ time: 1 + this.prng.nextInt(this.d.actionGapMax), kind: 'action' });
  }

  finishStats(): SimStats {
    this.stats.invariantChecks = this.inv.checks;
    this.stats.maxCommitted = this.inv.maxApplied;
    return this.stats;
  }

  run(): void {
    if (this.opts.script) {
      this.opts.script(this.control());
      this.queue.push({ time: this.now + 1, kind: 'action' });
    } else {
      while (this.stats.events < this.opts.events) this.step();
    }
    if (this.opts.liveness === false) return;
    this.heal();
    this.healedAt = this.now;
    this.lastDisturbanceAt = this.now;
    const boundTicks = this.livenessBoundTicks();
    this.stats.livenessBoundTicks = boundTicks;
    while (!this.markerCommitted) {
      if (this.now > this.lastDisturbanceAt + boundTicks * tickUnits) {
        this.inv.fail(
          'Liveness',
          `no proposal committed within ${boundTicks} ticks after the last disturbance at ${this.lastDisturbanceAt} (${this.describe()})`,
        );
      }
      this.step();
    }
    this.stats.livenessTicks = Math.ceil((this.now - this.healedAt) / tickUnits);
  }

  /**
   * Ticks a healed cluster may take to commit a proposal, counted from the schedule's last
   * disturbance (the heal: partitions end, drops stop, crashed members restart, perhaps one victim
   * stops for good; or a removed member stopped after it). No fault happens after that, so the
   * bound is the sum of:
   * - elections: livenessElectionTimeouts × electionTick (justified at the constant);
   * - catch-up: the new leader may have to bring a voter from the lowest commit index of any voter
   *   to the highest last index anywhere (a leader keeps accepting proposals while cut off from its
   *   quorum, so thousands of entries may wait). Worst case one entry per round trip (an App holds
   *   a single entry when appendBytesMax is small; a window of one message), plus one round trip
   *   per divergent term to find the match point (fast back-tracking) and one for a snapshot. A
   *   round trip in calm weather takes at most 2 × delayMax time units;
   * - messages sent before the heal that may still arrive: longDelayTicks.
   */
  private livenessBoundTicks(): number {
    let lowestVoterCommit = Number.MAX_SAFE_INTEGER;
    let highestLast = 0;
    for (const n of this.nodes.values()) {
      if (n.decommissioned) continue;
      highestLast = Math.max(highestLast, n.storage.lastIndex());
      if (n.core?.isVoter(n.id)) lowestVoterCommit = Math.min(lowestVoterCommit, n.core.log.committed);
    }
    if (lowestVoterCommit > highestLast) lowestVoterCommit = 0;
    const roundTrips = highestLast - lowestVoterCommit + this.stats.maxTerm + 1;
    const catchUpTicks = Math.ceil((roundTrips * 2 * calmWeather.delayMax) / tickUnits);
    return livenessElectionTimeouts * this.d.electionTick + catchUpTicks + longDelayTicks;
  }

  private describe(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      if (n.decommissioned) continue;
      const c = n.core;
      parts.push(
        c
          ? `${n.id}:${c.role[0]}t${c.currentTerm}c${c.log.committed}l${c.log.lastIndex()}v[${c.status().voters}]`
          : `${n.id}:down`,
      );
    }
    return parts.join(' ');
  }

  private step(): void {
    const ev = this.queue.pop();
    if (!ev) this.inv.fail('Simulator', 'event queue ran dry');
    if (this.queue.size > queueSizeMax)
      this.inv.fail('Simulator', `more than ${queueSizeMax} events pending`);
    this.now = ev.time;
    this.stats.events++;
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes.get(ev.node)!;
        if (!n.core || n.epoch !== ev.epoch) return;
        this.stats.ticks++;
        n.core.tick();
        this.processReady(n);
        this.queue.push({ time: this.now + tickUnits, kind: 'tick', node: n.id, epoch: n.epoch });
        break;
      }
      case 'deliver': {
        const n = this.nodes.get(ev.msg.to);
        if (!n?.core) {
          this.stats.dropped++;
          return;
        }
        this.stats.delivered++;
        try {
          n.core.step(ev.msg);
        } catch (err) {
          if (!(err instanceof RaftError)) throw err;
          this.stats.badMessages++;
        }
        this.processReady(n);
        break;
      }
      case 'restart': {
        const n = this.nodes.get(ev.node)!;
        n.restartPending = false;
        if (!n.core && !n.decommissioned && !n.keepDown) this.start(n);
        break;
      }
      case 'action':
        this.action();
        this.queue.push({ time: this.now + 1 + this.prng.nextInt(this.d.actionGapMax), kind: 'action' });
        break;
    }
    while (this.toDecommission.length > 0) {
      const n = this.nodes.get(this.toDecommission.pop()!);
      if (n && !n.decommissioned) {
        n.decommissioned = true;
        if (this.healed && n.core) this.lastDisturbanceAt = this.now;
        n.core = null;
      }
    }
  }

  // ------------------------------------------------------------ node lifecycle

  private start(n: SimNode): void {
    const d = this.d;
    const cfg = makeRaftConfig({
      id: n.id,
      electionTick: d.electionTick,
      heartbeatTick: d.heartbeatTick,
      preVote: d.preVote,
      checkQuorum: d.checkQuorum,
      inflightMsgCountMax: d.inflightMsgCountMax,
      appendBytesMax: d.appendBytesMax,
      ...(this.opts.bugs ? { testOnlyBugs: this.opts.bugs } : {}),
    });
    n.core = new RaftCore(cfg, n.storage, this.prng.fork());
    n.epoch++;
    const snap = n.storage.snapshot();
    this.restoreStateMachine(n, snap);
    n.confIdx = [];
    const last = n.storage.lastIndex();
    if (last >= n.storage.firstIndex()) {
      for (const e of n.storage.entries(n.storage.firstIndex(), last + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.kind === EntryKind.Conf) n.confIdx.push(e.index);
      }
    }
    this.queue.push({
      time: this.now + 1 + this.prng.nextInt(tickUnits),
      kind: 'tick',
      node: n.id,
      epoch: n.epoch,
    });
  }

  private crash(n: SimNode, restartAfter: number): void {
    if (!n.core) return;
    this.stats.crashes++;
    n.core = null;
    if (!n.restartPending) {
      n.restartPending = true;
      this.queue.push({ time: this.now + restartAfter, kind: 'restart', node: n.id });
    }
  }

  private restoreStateMachine(n: SimNode, snap: Snapshot): void {
    if (snap.data.length === 12) {
      const v = new DataView(snap.data.buffer, snap.data.byteOffset, 12);
      n.smIndex = v.getFloat64(0);
      n.smHash = v.getUint32(8);
    } else {
      n.smIndex = snap.meta.index;
      n.smHash = 0;
    }
    if (n.smIndex !== snap.meta.index)
      this.inv.fail(
        'SnapshotAtLogStart',
        `node ${n.id} snapshot data at ${n.smIndex} but meta at ${snap.meta.index}`,
      );
    this.inv.onRestore(n.id, n.smIndex, n.smHash);
  }

  // ------------------------------------------------------------ the driver (Ready handling)

  private processReady(n: SimNode): void {
    const core = n.core!;
    for (let k = 0; k < readyLoopMax; k++) {
      const rd = core.ready();
      if (!rd) break;
      if (this.opts.unsafeSendBeforePersist) this.sendAll(n, rd.messages);
      if (
        !this.healed &&
        rd.mustSync &&
        this.d.midReadyCrashRate > 0 &&
        this.prng.chance(this.d.midReadyCrashRate)
      ) {
        this.persistTorn(n, rd);
        this.crash(n, 1 + this.prng.nextInt(30 * tickUnits));
        return;
      }
      this.persist(n, core, rd, rd.entries.length, true);
      if (!this.opts.unsafeSendBeforePersist) this.sendAll(n, rd.messages);
      this.apply(n, rd);
      for (const rs of rd.readStates) {
        this.stats.readsConfirmed++;
        this.inv.onReadState(n.id, rs);
      }
      core.advance(rd);
    }
    this.stats.maxTerm = Math.max(this.stats.maxTerm, core.currentTerm);
    this.inv.afterReady(core, n.storage.lastIndex(), n.confIdx);
    if (core.role === 'Leader' && core.log.committed > n.leaderCommitChecked) this.checkQuorumLog(n, core);
  }

  /**
   * QuorumLogInv: when a leader's commit advances, every quorum of its configuration contains a
   * voter that holds the committed entry durably, i.e. holders > voters - quorum. (Not "a majority
   * holds it": a commit inherited across a membership change may be held by fewer voters.)
   */
  private checkQuorumLog(n: SimNode, core: RaftCore): void {
    const c = core.log.committed;
    const term = core.log.term(c);
    const voters = core.status().voters;
    let holders = 0;
    for (const v of voters) {
      const st = this.nodes.get(v)?.storage;
      if (st && (st.firstIndex() - 1 >= c || st.term(c) === term)) holders++;
    }
    if (holders <= voters.length - (Math.floor(voters.length / 2) + 1)) {
      this.inv.fail(
        'QuorumLogInv',
        `leader ${core.id} committed ${c} but only ${holders} of voters [${voters}] hold it`,
      );
    }
    n.leaderCommitChecked = c;
  }

  /** A crash before the fsync completed: a prefix of the write may have reached the disk. */
  private persistTorn(n: SimNode, rd: Ready): void {
    if (rd.snapshot && this.prng.chance(0.5)) return;
    const k = this.prng.nextInt(rd.entries.length + 1);
    this.persist(n, n.core!, rd, k, k === rd.entries.length && this.prng.chance(0.5));
  }

  private persist(n: SimNode, core: RaftCore, rd: Ready, entryCount: number, withHardState: boolean): void {
    const st = n.storage;
    if (rd.snapshot) {
      st.applySnapshot(rd.snapshot);
      n.confIdx = [];
      this.restoreStateMachine(n, rd.snapshot);
    }
    if (entryCount > 0) {
      const ents = rd.entries.slice(0, entryCount);
      const first = ents[0]!.index;
      const prevTerm = st.term(first - 1);
      if (prevTerm === undefined)
        this.inv.fail('Driver', `node ${n.id} append at ${first} has no predecessor`);
      this.inv.onPersistEntries(n.id, prevTerm, ents, core.role === 'Leader', st.lastIndex());
      st.append(ents);
      while (n.confIdx.length > 0 && n.confIdx[n.confIdx.length - 1]! >= first) n.confIdx.pop();
      for (const e of ents) {
        if (e.kind !== EntryKind.Conf) continue;
        n.confIdx.push(e.index);
        const learner = core.role === 'Leader' ? promotedLearner(e) : undefined;
        if (learner !== undefined) {
          const ls = this.nodes.get(learner)?.storage;
          const c = core.log.committed;
          this.inv.onPromote(core, learner, ls?.lastIndex() ?? 0, ls?.term(c), ls ? ls.firstIndex() - 1 : 0);
        }
      }
    }
    if (rd.hardState && withHardState) {
      this.inv.onHardState(n.id, st.hardState(), rd.hardState);
      st.setHardState(rd.hardState);
    }
  }

  private apply(n: SimNode, rd: Ready): void {
    for (const e of rd.committedEntries) {
      if (e.index <= n.smIndex) continue;
      if (e.index !== n.smIndex + 1)
        this.inv.fail('ApplyOrder', `node ${n.id} applies ${e.index} after ${n.smIndex}`);
      n.smHash = mixHash(n.smHash, e);
      n.smIndex = e.index;
      this.inv.onApply(n.id, e, n.smHash);
      if (e.kind === EntryKind.Conf) {
        const c = decodeConfEntry(e.data);
        if (c?.change.type === ConfChangeType.Remove) this.toDecommission.push(c.change.nodeId);
      } else if (this.healed && !this.markerCommitted) {
        const key = entryKey(e);
        const proposedAt = typeof key === 'number' ? this.markerKeys.get(key) : undefined;
        if (proposedAt !== undefined) {
          this.markerCommitted = true;
          this.stats.livenessElectedTicks = Math.ceil((proposedAt - this.healedAt) / tickUnits);
        }
      }
    }
  }

  private sendAll(n: SimNode, msgs: readonly Message[]): void {
    const term = n.core!.currentTerm;
    for (const m of msgs) {
      this.inv.onSend(m, term, this.opts.skipPersistCheck ? null : n.storage);
      if (m.snapshot) this.stats.snapshotsSent++;
      this.route(m);
    }
  }

  // ------------------------------------------------------------ network

  private route(m: Message): void {
    this.opts.onMessage?.(m);
    this.opts.trace?.(
      `${this.now} ${m.type} ${m.from}>${m.to} t${m.term} i${m.index} lt${m.logTerm} n${m.entries.length} c${m.commit}${m.reject ? ` REJ h${m.rejectHint}` : ''}${m.snapshot ? ` snap${m.snapshot.meta.index}` : ''}`,
    );
    const link = m.from * 1024 + m.to;
    const w = this.linkWeather.get(link) ?? this.weather;
    if (
      this.blocked.has(link) ||
      this.dropFilter?.(m) === true ||
      (w.dropRate > 0 && this.prng.chance(w.dropRate))
    ) {
      this.stats.dropped++;
      return;
    }
    this.queue.push({ time: this.now + this.delay(w), kind: 'deliver', msg: m });
    if (w.dupRate > 0 && this.prng.chance(w.dupRate)) {
      this.queue.push({ time: this.now + this.delay(w), kind: 'deliver', msg: m });
    }
  }

  private delay(w: LinkWeather): number {
    if (w.longDelayRate > 0 && this.prng.chance(w.longDelayRate)) return 1 + this.prng.nextInt(8 * tickUnits);
    return 1 + this.prng.nextInt(w.delayMax);
  }

  /**
   * Liveness mode: partitions and bad weather end, crashes stop, every member restarts — except,
   * when the seed says so, one voter that stays down for good (a permanent minority failure),
   * chosen only when every member's log ends in the same configuration of at least three voters.
   */
  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    this.dropFilter = null;
    this.weather = calmWeather;
    this.linkWeather.clear();
    for (const n of this.nodes.values()) {
      if (!n.core && !n.decommissioned && !n.keepDown) this.start(n);
    }
    if (!this.d.livenessKeepOneDown) return;
    // Only when the configuration can no longer change: every member has applied the one its log
    // ends in, all the same (liveness mode proposes no changes). With a change still pending, a
    // voter removed by it may already be stopped while members that have not applied it yet
    // still count it, and the dead victim would be a second failure (see docs/raft.md).
    let conf: string | undefined;
    let voters: readonly number[] = [];
    for (const n of this.nodes.values()) {
      if (!n.core || n.decommissioned) continue;
      const st = n.core.status();
      const logConf = this.lastLogConf(n);
      const applied = `${st.voters}|${st.learners}`;
      if (logConf.voters.length === 0 && st.voters.length === 0) continue; // a joiner that knows nothing yet
      if (applied !== `${logConf.voters}|${logConf.learners}`) return;
      if (conf !== undefined && applied !== conf) return;
      conf = applied;
      voters = st.voters;
    }
    if (voters.length < 3 || voters.some((v) => this.nodes.get(v)?.decommissioned !== false)) return;
    const victim = this.nodes.get(this.pick(voters)!)!;
    victim.keepDown = true;
    victim.core = null;
    this.stats.crashes++;
  }

  // ------------------------------------------------------------ scripted scenarios

  private control(): SimControl {
    const stepsMaxDefault = 200_000;
    return {
      derived: this.d,
      leader: () => this.leader()?.id,
      core: (id) => this.nodes.get(id)?.core ?? null,
      runUntil: (what, cond, eventsMax = stepsMaxDefault) => {
        for (let k = 0; !cond(); k++) {
          if (k >= eventsMax)
            this.inv.fail('Scenario', `not reached in ${eventsMax} events: ${what} (${this.describe()})`);
          this.step();
        }
      },
      runFor: (ticks) => {
        const until = this.now + ticks * tickUnits;
        while (this.now < until) this.step();
      },
      isolate: (id) => {
        for (const other of this.nodes.keys()) {
          if (other === id) continue;
          this.blocked.add(id * 1024 + other);
          this.blocked.add(other * 1024 + id);
        }
      },
      healLinks: () => {
        this.blocked.clear();
        this.dropFilter = null;
      },
      dropWhere: (drop) => {
        this.dropFilter = drop;
      },
      killForGood: (id) => {
        const n = this.nodes.get(id)!;
        n.keepDown = true;
        this.crash(n, 1);
      },
      addLearner: (leaderId) => {
        const l = this.nodes.get(leaderId)!;
        const id = this.nextNodeId;
        l.core!.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: id });
        this.nextNodeId++;
        const n = new SimNode(id, new MemoryStorage());
        this.nodes.set(id, n);
        this.start(n);
        this.processReady(l);
        return id;
      },
      proposeConfChange: (id, change) => {
        const n = this.nodes.get(id)!;
        n.core!.proposeConfChange(change);
        this.processReady(n);
      },
      campaign: (id) => {
        const n = this.nodes.get(id)!;
        n.core!.campaign();
        this.processReady(n);
      },
    };
  }

  /** The configuration the node's durable log ends in (its last conf entry, else its snapshot's). */
  private lastLogConf(n: SimNode): { voters: readonly number[]; learners: readonly number[] } {
    const st = n.storage;
    const i = n.confIdx[n.confIdx.length - 1];
    if (i !== undefined && i >= st.firstIndex()) {
      const d = decodeConfEntry(st.entries(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!.data);
      if (d) return d.conf;
    }
    return st.snapshot().meta.conf;
  }

  // ------------------------------------------------------------ workload

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      const c = n.core;
      if (c?.role === 'Leader' && (!best || c.currentTerm > best.core!.currentTerm)) best = n;
    }
    return best;
  }

  private running(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.core) out.push(n);
    return out;
  }

  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[this.prng.nextInt(xs.length)];
  }

  private nextPayload(): Uint8Array {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setFloat64(0, ++this.proposalSeq);
    return data;
  }

  private action(): void {
    if (this.healed) {
      const l = this.leader();
      if (l && l.core!.currentTerm !== this.markerTerm) {
        try {
          const data = this.nextPayload();
          l.core!.propose(data);
          this.markerKeys.set(this.proposalSeq, this.now);
          this.markerTerm = l.core!.currentTerm;
          this.processReady(l);
        } catch (err) {
          if (!(err instanceof RaftError)) throw err;
        }
      }
      return;
    }
    const r = this.prng.nextInt(100);
    try {
      if (r < 40) this.actPropose(this.leader());
      else if (r < 50) this.actRead();
      else if (r < 53) this.actPropose(this.pick(this.running()));
      else if (r < 62) this.actConfChange();
      else if (r < 66) this.actTransfer();
      else if (r < 76) this.actCompact();
      else if (r < 80) this.actCrash();
      else if (r < 85) this.actPartition();
      else if (r < 91) {
        this.blocked.clear();
        this.linkWeather.clear();
      } else this.actWeather();
    } catch (err) {
      if (!(err instanceof RaftError)) throw err; // refusals (NOT_LEADER, BUSY, …) are expected
    }
  }

  /** A ReadIndex request, mostly on a node that believes it leads (a deposed leader too). */
  private actRead(): void {
    const leaders = this.running().filter((n) => n.core!.role === 'Leader');
    const n = this.pick(leaders.length > 0 && this.prng.chance(0.9) ? leaders : this.running());
    if (!n) return;
    const count = 1 + this.prng.nextInt(3);
    for (let k = 0; k < count; k++) {
      const ctx = ++this.readSeq;
      n.core!.readIndex(ctx);
      this.stats.readsRequested++;
      this.inv.onReadRequest(ctx, n.id, n.core!.currentTerm);
    }
    this.processReady(n);
  }

  private actPropose(n: SimNode | undefined): void {
    if (!n?.core) return;
    const count = 1 + this.prng.nextInt(3);
    for (let k = 0; k < count; k++) {
      n.core.propose(this.nextPayload());
      this.stats.proposals++;
    }
    this.processReady(n);
  }

  private actConfChange(): void {
    const l = this.leader();
    if (!l) return;
    const core = l.core!;
    const st = core.status();
    const r = this.prng.nextInt(100);
    if (r < 35 && st.learners.length > 0) {
      const learner = this.pick(st.learners)!;
      const pr = st.progress[learner];
      if (!pr || pr.match < st.commit) return; // the application decides when it is caught up
      core.proposeConfChange({ type: ConfChangeType.Promote, nodeId: learner });
    } else if (r < 65 && st.voters.length + st.learners.length < 6 && this.nodes.size < nodeCountMax) {
      const id = this.nextNodeId;
      core.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: id });
      // The new member exists once the change is in the leader's log (ids are never reused).
      this.nextNodeId++;
      const n = new SimNode(id, new MemoryStorage());
      this.nodes.set(id, n);
      this.start(n);
    } else if (r < 90 && st.voters.length >= 3) {
      core.proposeConfChange({ type: ConfChangeType.Remove, nodeId: this.pick(st.voters)! });
    } else if (st.learners.length > 0) {
      core.proposeConfChange({ type: ConfChangeType.Remove, nodeId: this.pick(st.learners)! });
    } else {
      return;
    }
    this.stats.confChanges++;
    this.processReady(l);
  }

  private actTransfer(): void {
    const l = this.leader();
    if (!l) return;
    const to = this.pick(l.core!.status().voters.filter((v) => v !== l.id));
    if (to === undefined) return;
    l.core!.transferLeadership(to);
    this.stats.transfers++;
    this.processReady(l);
  }

  private actCompact(): void {
    const n = this.pick(this.running());
    if (!n) return;
    const core = n.core!;
    const idx = n.smIndex;
    if (idx <= n.storage.firstIndex() - 1 + this.prng.nextInt(8)) return;
    const data = new Uint8Array(12);
    const v = new DataView(data.buffer);
    v.setFloat64(0, idx);
    v.setUint32(8, n.smHash);
    const snap = core.compact(idx, data);
    n.storage.compact(snap);
    n.confIdx = n.confIdx.filter((i) => i > idx);
    this.stats.compactions++;
  }

  private actCrash(): void {
    const n = this.pick(this.running());
    if (n) this.crash(n, 1 + this.prng.nextInt(40 * tickUnits));
  }

  private actPartition(): void {
    const ids = [...this.nodes.keys()];
    const side = new Set(ids.filter(() => this.prng.chance(0.5)));
    const oneWay = this.prng.chance(0.3);
    for (const a of ids) {
      for (const b of ids) {
        if (side.has(a) && !side.has(b)) {
          this.blocked.add(a * 1024 + b);
          if (!oneWay) this.blocked.add(b * 1024 + a);
        }
      }
    }
  }

  /** New weather for the whole network, or for one directed link. */
  private actWeather(): void {
    const w: LinkWeather = {
      dropRate: [0, 0, 0.01, 0.05, 0.2, 0.6][this.prng.nextInt(6)]!,
      dupRate: [0, 0, 0.02, 0.1][this.prng.nextInt(4)]!,
      delayMax: [2, 4, 8, 20][this.prng.nextInt(4)]!,
      longDelayRate: [0, 0, 0.01, 0.05][this.prng.nextInt(4)]!,
    };
    if (this.prng.chance(0.5)) {
      this.weather = w;
      return;
    }
    const ids = [...this.nodes.keys()];
    const from = this.pick(ids)!;
    const to = this.pick(ids)!;
    if (from !== to) this.linkWeather.set(from * 1024 + to, w);
  }
}
