/**
 * One seeded whole-node run: nodes assembled like walrus-node (sim-node.ts) on simulated disks,
 * network and clock, clients (workload.ts) whose answers the oracle checks, and chaos: crashes
 * (with or without the page cache) and restarts, SIGSTOP-like pauses, partitions (one-way too) and
 * heals, network weather (loss, duplication, reordering, long delays), disk faults (ENOSPC, EIO,
 * crash points, torn writes), bit flips, joins, removals, and a disk wipe that an operator answers
 * as docs/cluster.md says (remove the node, empty its directory, start it with --join).
 * Raft safety (raft-checks.ts), segment replication's invariants S1-S9 (replication-checks.ts) and
 * the clients' invariants (oracle.ts) are checked as the run goes. Then liveness: everything
 * heals, every member restarts; within a bound computed from the run's timeouts (livenessBoundMs)
 * a leader must be up with every member caught up to its commit index, each topic must take an
 * append, and every acknowledged record must read back; then, settled, every copy must match its
 * seal (S8) and the sweeps of S2, S3 and S5 run once more.
 *
 * Everything derives from the seed; `SEED=n` replays a run bit for bit.
 */
import { Prng } from '../../../node/raft/index.js';
import { replicationLimits } from '../../../node/topics/replication-limits.js';
import { raftNodeLimits } from '../../../node/metadata/raft-node.js';
import { InvariantViolation } from '../invariants.js';
import { Oracle, type TopicModel, violation } from './oracle.js';
import { type DiskFaults, noDiskFaults } from './sim-disk.js';
import { calmWeather } from './sim-network.js';
import { SimCluster, isInjected, stackOf } from './sim-cluster.js';
import type { NodeBugs, NodeSettings } from './sim-node.js';
import { type MetadataState, replicasOf } from '../../../node/metadata/metadata-state.js';
import { ProcessDead } from './sim-world.js';
import { Workload } from './workload.js';
import { ReplicationChecks, type ReplicationStats } from './replication-checks.js';

/**
 * Schedules: `soak` (npm run soak, the default of sim:whole) draws its options as the simulator
 * always did; `quick` (npm test's 200 seeds) keeps those draws but always has chaos, and densely
 * (a short fault phase must still see crashes, pauses, partitions and wipes).
 */
export type Profile = 'soak' | 'quick';

/** Simulated ms of the fault phase of each profile. */
export const profileFaultMs: Readonly<Record<Profile, number>> = { soak: 12_000, quick: 5_000 };

export interface WholeNodeOptions {
  readonly seed: number;
  /** Which schedules (default soak). */
  readonly profile?: Profile;
  /** Simulated ms of the fault phase (default: the profile's). */
  readonly faultMs?: number;
  /** TEST ONLY: defects put back into every node. */
  readonly bugs?: NodeBugs;
  /** Overrides of the seed-derived options. */
  readonly overrides?: Partial<Derived>;
  /** Debugging: receives every log line of every node. */
  readonly trace?: (line: string) => void;
}

/** Options drawn from the seed; printed with every failure. */
export interface Derived {
  readonly initialNodes: number;
  readonly joinsMax: number;
  readonly tickMs: number;
  readonly electionTick: number;
  readonly segmentEntryCountMax: number;
  readonly compactEntryCount: number;
  readonly monitorCheckMs: number;
  readonly clients: number;
  readonly thinkMsMax: number;
  /** A client gives up on a request after this long (its outcome is then unknown). */
  readonly clientTimeoutMs: number;
  readonly topicCountMax: number;
  /** Mean simulated ms between chaos actions (0: none). */
  readonly chaosGapMs: number;
  readonly powerLossShare: number;
  readonly restartDelayMaxMs: number;
  readonly dropRate: number;
  readonly dupRate: number;
  readonly delayMaxMs: number;
  readonly diskFaults: DiskFaults;
  readonly bitFlips: boolean;
  readonly clockSkewMaxMs: number;
  readonly removals: boolean;
  /** Topics created up front with many metadata entries (a snapshot far above one frame). */
  readonly bloatTopics: number;
  /** Longest SIGSTOP of a node (simulated ms). */
  readonly pauseMaxMs: number;
  /** Whether one node's disk may be wiped (then removed and re-added by the operator). */
  readonly wipes: boolean;
  /** Relative weights of the chaos actions. */
  readonly chaosMix: ChaosMix;
}

export type ChaosAction =
  | 'crash'
  | 'partition'
  | 'isolateLeader'
  | 'weather'
  | 'disk'
  | 'join'
  | 'bitFlip'
  | 'pause'
  | 'wipe'
  | 'nothing';
export type ChaosMix = Readonly<Record<ChaosAction, number>>;

export const defaultChaosMix: ChaosMix = {
  crash: 30,
  partition: 25,
  isolateLeader: 0,
  weather: 15,
  disk: 15,
  join: 7,
  bitFlip: 3,
  pause: 10,
  wipe: 4,
  nothing: 5,
};

function chaosWeightTotal(mix: ChaosMix): number {
  return Object.values(mix).reduce((a, b) => a + b, 0);
}

export interface WholeNodeStats {
  events: number;
  simMs: number;
  realMs: number;
  clientOps: number;
  acks: number;
  appendedRecords: number;
  readRecords: number;
  crashes: number;
  powerLosses: number;
  faultCrashes: number;
  exits: number;
  partitions: number;
  joins: number;
  removals: number;
  /** Removals the product refused because another node's removal was under way. */
  removalsRefused: number;
  snapshotsInstalled: number;
  messages: number;
  oversize: number;
  duplicatedRequests: number;
  pauses: number;
  wipes: number;
  wipedRemoved: number;
  wipedReadded: number;
  livenessMs: number;
  replication: ReplicationStats;
}

export interface WholeNodeResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation?: string;
  readonly derived: Derived;
  readonly stats: WholeNodeStats;
}

/** Fault phase length by default (simulated ms). */
export const faultMsDefault = profileFaultMs.soak;
/** Cluster formation before chaos starts (simulated ms). */
const formationMs = 2_000;
/** Election timeouts allowed after healing for a leader to settle. */
const livenessElectionTimeouts = 30;
/** The longest chain of node-side waits a request left over from the fault phase can hold (ms). */
const stuckRequestMs = 2 * 30_000;
/** Events between comparisons of the applied metadata of nodes at the same index. */
const stateCompareEvery = 400;
/** Metadata with more topics than this is not compared (JSON of megabytes every few hundred events). */
const stateCompareTopicCountMax = 1_000;
/** Nodes ever created in one run. */
const nodeCountMax = 9;
/**
 * After liveness: simulated ms within which every copy of a sealed segment must have settled (a
 * replica completing its copy may first wait out a lost request: replicaRequestTimeoutMs, twice).
 */
const settleMs = 2 * replicationLimits.replicaRequestTimeoutMs + 5_000;
/** Events between looks at whether everything settled. */
const settleCheckEvery = 50;
/** Least replicas (not removed) of every segment a node holds before its disk may be wiped (one of three lost). */
const wipeReplicasMin = 3;

export function deriveOptions(seed: number, profile: Profile = 'soak'): Derived {
  const d = deriveSoakOptions(seed);
  if (profile === 'soak') return d;
  const q = new Prng(seed ^ 0x0c1c_0c1c);
  return { ...d, chaosGapMs: [150, 300, 600][q.nextInt(3)]! };
}

function deriveSoakOptions(seed: number): Derived {
  const p = new Prng(seed ^ 0x5eed_0b0d);
  const pick = <T>(xs: readonly T[]): T => xs[p.nextInt(xs.length)]!;
  const faulty = p.chance(0.6);
  return {
    initialNodes: pick([1, 3, 3, 3, 5]),
    joinsMax: pick([0, 1, 2]),
    tickMs: pick([20, 50, 100]),
    electionTick: pick([5, 10]),
    segmentEntryCountMax: pick([3, 8, 40]),
    compactEntryCount: pick([16, 64, 500]),
    monitorCheckMs: pick([100, 400, 1000]),
    clients: pick([2, 3, 5]),
    thinkMsMax: pick([5, 30, 150]),
    clientTimeoutMs: pick([500, 2000, 5000]),
    topicCountMax: pick([3, 6, 10]),
    chaosGapMs: pick([0, 300, 800, 2000]),
    powerLossShare: pick([0, 0.5, 1]),
    restartDelayMaxMs: pick([50, 500, 3000]),
    dropRate: pick([0, 0, 0.02, 0.1]),
    dupRate: pick([0, 0.02, 0.1]),
    delayMaxMs: pick([3, 10, 40]),
    diskFaults: faulty
      ? {
          writeFullRate: pick([0, 0.002, 0.01]),
          writeErrorRate: pick([0, 0.001]),
          syncErrorRate: pick([0, 0.001, 0.005]),
          crashPointRate: pick([0, 0.001, 0.004]),
        }
      : noDiskFaults,
    bitFlips: p.chance(0.1),
    clockSkewMaxMs: pick([0, 50, 2000]),
    removals: p.chance(0.5),
    bloatTopics: 0,
    chaosMix: defaultChaosMix,
    // Drawn last: the draws above stay those of the seeds before pauses and wipes existed.
    pauseMaxMs: pick([300, 1500, 4000]),
    wipes: p.chance(0.5),
  };
}

export function replayCommand(seed: number, faultMs: number, profile: Profile = 'soak'): string {
  return `SEED=${seed} SIM_MS=${faultMs}${profile === 'soak' ? '' : ` SIM_PROFILE=${profile}`} npm run sim:whole`;
}

/** Simulated ms after healing within which the cluster must be live again. */
export function livenessBoundMs(d: Derived): number {
  const electionTimeoutMaxMs = 2 * d.electionTick * d.tickMs;
  return (
    d.restartDelayMaxMs +
    1000 + // the supervisor's restart of an exited node
    livenessElectionTimeouts * electionTimeoutMaxMs +
    stuckRequestMs +
    raftNodeLimits.proposeTimeoutMs
  );
}

export async function runWholeNodeSim(o: WholeNodeOptions): Promise<WholeNodeResult> {
  const run = new Run(o);
  const started = performance.now();
  let error: unknown = null;
  try {
    await run.execute();
  } catch (e) {
    error = e;
  }
  run.cleanup();
  error ??= run.failure;
  const stats = run.finishStats(performance.now() - started);
  if (error === null) return { seed: o.seed, ok: true, derived: run.d, stats };
  const kind = error instanceof InvariantViolation ? 'invariant' : 'crash';
  const text = error instanceof InvariantViolation ? error.message : stackOf(error);
  return {
    seed: o.seed,
    ok: false,
    violation: `${kind} ${text}\n  at simulated ${run.cluster.world.now.toFixed(0)} ms after ${run.cluster.world.events} events\n  last log lines:\n${run.cluster.logTail().replace(/^/gm, '    ')}`,
    derived: run.d,
    stats,
  };
}

class Run {
  readonly d: Derived;
  readonly cluster: SimCluster;
  readonly oracle = new Oracle();
  readonly workload: Workload;
  readonly checks: ReplicationChecks;
  failure: unknown = null;
  private phase: 'faults' | 'healing' | 'done' = 'faults';
  private readonly prng: Prng;
  private readonly faultMs: number;
  private nextNodeId = 1;
  private partitions = 0;
  private joins = 0;
  private pauses = 0;
  private wipedRemoved = 0;
  private wipedReadded = 0;
  private livenessMs = 0;
  /** What liveness waits for now (reported when it is not reached). */
  private status = '';
  /** Nodes the run restarts itself (not on the chaos schedule). */
  private readonly holdDown = new Set<number>();
  private readonly rejectionListener = (reason: unknown): void => this.onUnhandled(reason);

  constructor(o: WholeNodeOptions) {
    const profile = o.profile ?? 'soak';
    this.d = { ...deriveOptions(o.seed, profile), ...o.overrides };
    this.faultMs = o.faultMs ?? profileFaultMs[profile];
    this.prng = new Prng(o.seed);
    const settings: NodeSettings = {
      tickMs: this.d.tickMs,
      electionTick: this.d.electionTick,
      segmentEntryCountMax: this.d.segmentEntryCountMax,
      compactEntryCount: this.d.compactEntryCount,
      monitorCheckMs: this.d.monitorCheckMs,
      bugs: o.bugs ?? {},
    };
    this.cluster = new SimCluster(o.seed, settings);
    this.cluster.trace = o.trace ?? null;
    this.workload = new Workload(
      this.cluster,
      this.oracle,
      this.prng.fork(),
      this.d.topicCountMax,
      this.d.clientTimeoutMs,
    );
    this.workload.allowRemovals = this.d.removals;
    this.workload.removeWithoutHandOff = o.bugs?.removeWithoutHandOff === true;
    this.cluster.onCrash = (id) => {
      if (!this.holdDown.has(id)) this.scheduleRestart(id);
    };
    this.cluster.onViolation = (error) => this.fail(error);
    this.cluster.onTopicStart = (name, start) => {
      const t = this.oracle.topics.get(name);
      if (t !== undefined) t.startMax = Math.max(t.startMax, start);
    };
    this.checks = new ReplicationChecks(this.cluster, this.oracle);
    this.checks.report = (error) => this.fail(error);
    this.cluster.walObserver = this.checks;
    this.cluster.onNodeApplied = (id, state, command) => this.checks.onApplied(id, state, command);
    this.workload.onAck = (t, values, first) => this.checks.onAck(t.name, values, first);
    // An operator does not remove other members while a wiped one is out (the Raft quorum would go).
    this.workload.holdRemovals = () => this.checks.wipedPending.size > 0;
  }

  private onUnhandled(reason: unknown): void {
    if (reason instanceof ProcessDead || isInjected(reason)) return;
    this.fail(new InvariantViolation('UnhandledRejection', stackOf(reason)));
  }

  fail(error: unknown): void {
    this.failure ??= error;
  }

  cleanup(): void {
    process.off('unhandledRejection', this.rejectionListener);
  }

  private get world() {
    return this.cluster.world;
  }

  /** A promise resolved after `ms` of simulated time (the clients' and the driver's own waits). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.world.after(ms, resolve));
  }

  private spawn(work: () => Promise<void>): void {
    work().catch((error: unknown) => this.fail(error));
  }

  async execute(): Promise<void> {
    process.on('unhandledRejection', this.rejectionListener);
    const d = this.d;
    this.addNode(false);
    for (let i = 1; i < d.initialNodes; i++) this.world.after(100 * i, () => this.addNode(true));
    if (d.bloatTopics > 0) this.spawn(() => this.bloat());
    for (let c = 0; c < d.clients; c++) this.spawn(() => this.client());
    if (d.chaosGapMs > 0) this.spawn(() => this.chaos());
    await this.world.run({
      untilTime: this.faultMs,
      stop: () => this.failure !== null,
      afterEvent: () => this.afterEvent(),
    });
    if (this.failure !== null) return;
    await this.liveness();
  }

  private addNode(joins: boolean): void {
    const id = this.nextNodeId++;
    const skew =
      this.d.clockSkewMaxMs === 0
        ? 0
        : this.prng.nextInt(2 * this.d.clockSkewMaxMs + 1) - this.d.clockSkewMaxMs;
    this.cluster.addNode(id, joins, skew);
    this.cluster.boot(id);
  }

  private scheduleRestart(id: number): void {
    const delay = 1 + this.prng.nextInt(this.d.restartDelayMaxMs);
    this.world.after(delay, () => this.cluster.boot(id));
  }

  // ---- clients ----

  private async client(): Promise<void> {
    await this.sleep(formationMs / 2 + this.prng.nextInt(200));
    while (this.phase === 'faults') {
      await this.workload.step();
      await this.sleep(1 + this.prng.nextInt(this.d.thinkMsMax));
    }
  }

  /**
   * Many small metadata commands at once, while one follower is down: when it returns, every log
   * is compacted past it and it needs a snapshot far above one peer frame.
   */
  private async bloat(): Promise<void> {
    await this.sleep(formationMs);
    const follower = [...this.cluster.nodes.values()].find(
      (n) => n.running?.serving === true && n.running.core?.role === 'Follower',
    );
    if (follower !== undefined) {
      this.holdDown.add(follower.id);
      this.cluster.crash(follower.id, false);
    }
    const pad = 'x'.repeat(180);
    const batch = 200;
    for (let k = 0; k < this.d.bloatTopics && this.phase === 'faults'; k += batch) {
      const leader = [...this.cluster.nodes.values()].find((n) => n.running?.raft?.isLeader === true);
      if (leader === undefined) {
        await this.sleep(100);
        k -= batch;
        continue;
      }
      const raft = leader.running!.raft!;
      const proposals: Promise<unknown>[] = [];
      for (let i = k; i < Math.min(k + batch, this.d.bloatTopics); i++) {
        proposals.push(
          raft
            .propose({
              type: 'createTopic',
              name: `b${i}${pad}`,
              retention: { retentionMs: null, retentionBytes: null },
              createdAtMs: 0,
              leaderNodeId: leader.id,
            })
            .catch(() => undefined),
        );
      }
      await Promise.all(proposals);
    }
    if (follower !== undefined) {
      this.holdDown.delete(follower.id);
      this.cluster.boot(follower.id);
    }
  }

  // ---- chaos ----

  private async chaos(): Promise<void> {
    await this.sleep(formationMs);
    while (this.phase === 'faults') {
      await this.sleep(1 + this.prng.nextInt(2 * this.d.chaosGapMs));
      if (this.phase !== 'faults') return;
      let r = this.prng.nextInt(chaosWeightTotal(this.d.chaosMix));
      for (const [action, weight] of Object.entries(this.d.chaosMix) as [ChaosAction, number][]) {
        if (r < weight) {
          this.act(action);
          break;
        }
        r -= weight;
      }
    }
  }

  private act(action: ChaosAction): void {
    const actions: Record<ChaosAction, () => void> = {
      crash: () => this.crashOne(),
      partition: () => this.partition(),
      isolateLeader: () => this.partition(true),
      weather: () => this.weather(),
      disk: () => this.diskFaults(),
      join: () => this.join(),
      bitFlip: () => this.bitFlip(),
      pause: () => this.pause(),
      wipe: () => this.wipe(),
      nothing: () => {},
    };
    actions[action]();
    this.cluster.trace?.(
      `${this.world.now.toFixed(0)} chaos ${action}: ${this.cluster.net.cutCount} links cut`,
    );
  }

  /** Crashes a node, the Raft leader half of the time (its successor's first moments are the risky ones). */
  private crashOne(): void {
    const up = this.cluster.upIds();
    if (up.length === 0) return;
    const leader = up.find((id) => this.cluster.node(id).running?.core?.role === 'Leader');
    const id = leader !== undefined && this.prng.chance(0.5) ? leader : up[this.prng.nextInt(up.length)]!;
    this.cluster.crash(id, this.prng.chance(this.d.powerLossShare));
  }

  private partition(leaderOnly = false): void {
    const ids = [...this.cluster.nodes.keys()];
    const net = this.cluster.net;
    const kind = leaderOnly ? 0 : this.prng.nextInt(3);
    if (kind === 0) {
      // Isolate one node (the Raft leader half of the time), both ways.
      const leader = ids.find((id) => this.cluster.node(id).running?.core?.role === 'Leader');
      const victim =
        leader !== undefined && (leaderOnly || this.prng.chance(0.5))
          ? leader
          : ids[this.prng.nextInt(ids.length)]!;
      for (const other of ids) {
        if (other === victim) continue;
        net.cutLink(victim, other);
        net.cutLink(other, victim);
      }
    } else if (kind === 1) {
      // One-way cuts.
      for (let i = 0; i < 1 + this.prng.nextInt(3); i++) {
        const a = ids[this.prng.nextInt(ids.length)]!;
        const b = ids[this.prng.nextInt(ids.length)]!;
        if (a !== b) net.cutLink(a, b);
      }
    } else {
      // Two random sides.
      const side = new Set(ids.filter(() => this.prng.chance(0.5)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) net.cutLink(a, b);
    }
    this.partitions++;
    const healAfter = 100 + this.prng.nextInt(4000);
    this.world.after(healAfter, () => {
      if (this.phase === 'faults') net.healAll();
    });
  }

  private weather(): void {
    const net = this.cluster.net;
    net.weather = {
      dropRate: this.prng.chance(0.5) ? this.d.dropRate : 0,
      dupRate: this.prng.chance(0.5) ? this.d.dupRate : 0,
      delayMinMs: 1,
      delayMaxMs: Math.max(1, this.prng.nextInt(this.d.delayMaxMs + 1)),
      longDelayRate: this.prng.chance(0.3) ? 0.01 : 0,
    };
    this.world.after(200 + this.prng.nextInt(3000), () => {
      net.weather = calmWeather;
    });
  }

  private diskFaults(): void {
    if (this.d.diskFaults === noDiskFaults) return;
    const nodes = [...this.cluster.nodes.values()];
    const node = nodes[this.prng.nextInt(nodes.length)]!;
    node.disk.faults = this.d.diskFaults;
    this.world.after(200 + this.prng.nextInt(3000), () => {
      node.disk.faults = noDiskFaults;
    });
  }

  private join(): void {
    if (this.joins >= this.d.joinsMax || this.nextNodeId > nodeCountMax) return;
    this.joins++;
    this.addNode(true);
  }

  /**
   * Flips a bit of one node's durable data, once per run. In raft_meta/ (the node then refuses to
   * start, for good) only when the others still make a quorum: with 3 voters or more and no removals.
   */
  private bitFlip(): void {
    // After a wipe a second damaged node would be more than one of three lost.
    if (!this.d.bitFlips || this.cluster.rotted.size > 0 || this.checks.wipeCount > 0) return;
    const nodes = [...this.cluster.nodes.values()].filter((n) => !this.cluster.removed.has(n.id));
    const node = nodes[this.prng.nextInt(nodes.length)]!;
    const voters = node.running?.raft?.status().voters.length ?? 0;
    const inRaftMeta = !this.d.removals && voters >= 3 && this.prng.chance(0.3);
    const file = node.disk.flipBit((p) => (inRaftMeta ? p.includes('/raft_meta/') : p.includes('/topics/')));
    if (file !== null) this.cluster.rotted.add(node.id);
  }

  /**
   * SIGSTOP for a while, then SIGCONT: a segment leader or the Raft leader half of the time (a
   * leader paused past segmentLeaderDeadAfterMs is fenced and comes back a zombie).
   */
  private pause(): void {
    const up = this.cluster.upIds();
    if (up.length === 0) return;
    const leading = up.filter((id) => {
      const r = this.cluster.node(id).running;
      if (r?.core?.role === 'Leader') return true;
      for (const t of r?.state.topics.values() ?? [])
        if (t.segments[t.segments.length - 1]?.leaderNodeId === id) return true;
      return false;
    });
    const pool = leading.length > 0 && this.prng.chance(0.5) ? leading : up;
    const id = pool[this.prng.nextInt(pool.length)]!;
    const process = this.cluster.node(id).running!.process;
    process.pausedUntil = Math.max(
      process.pausedUntil,
      this.world.now + 1 + this.prng.nextInt(this.d.pauseMaxMs),
    );
    this.pauses++;
  }

  /**
   * Wipes one node's disk, once per run, when it is a voter of at least three and every segment it
   * holds has at least three replicas (one copy of three is lost; nothing acknowledged may be).
   * The operator then does what docs/cluster.md says (operator()).
   */
  private wipe(): void {
    if (!this.d.wipes || this.checks.wipeCount > 0 || this.cluster.rotted.size > 0) return;
    const state = this.workload.bestState();
    const leader = [...this.cluster.nodes.values()].find((n) => n.running?.raft?.isLeader === true);
    const voters = leader?.running?.raft?.status().voters ?? [];
    if (state === null || voters.length < 3) return;
    // A removal under way would leave two voters with one of them wiped: no quorum, ever (one
    // fault beyond what three voters tolerate; soak seed 991). The disk fails another time.
    if (this.workload.removing.size > 0) return;
    const candidates = voters.filter((id) => {
      const n = this.cluster.nodes.get(id);
      if (n === undefined || n.refused !== null || this.cluster.removed.has(id)) return false;
      for (const t of state.topics.values())
        for (const s of t.segments) {
          const replicas = replicasOf(s);
          const kept = replicas.filter((r) => !this.cluster.removed.has(r));
          if (replicas.includes(id) && kept.length < wipeReplicasMin) return false;
        }
      return true;
    });
    if (candidates.length === 0) return;
    const id = candidates[this.prng.nextInt(candidates.length)]!;
    this.holdDown.add(id);
    this.checks.onWipe(id, state);
    this.cluster.wipe(id);
    this.cluster.trace?.(`${this.world.now.toFixed(0)} chaos: node ${id}'s disk wiped`);
    this.spawn(() => this.operator(id));
  }

  /**
   * The operator's answer to a wiped node (docs/cluster.md, "Node identity"): it is started again
   * with --join and must be refused (a new incarnation under a member's id); it is removed through
   * remove-node (retried while refused); then its directory is emptied and it is started with
   * --join, and joins as a new member under its old id. It goes on while the cluster heals: a wipe
   * late in the fault phase is still answered (it stopped at the phase's end, and the wiped node
   * was left refused for good: quick seed 100448, soak seed 991).
   */
  private async operator(id: number): Promise<void> {
    const node = this.cluster.node(id);
    await this.sleep(1 + this.prng.nextInt(this.d.restartDelayMaxMs));
    if (!this.running()) return;
    this.cluster.boot(id);
    while (this.running() && !this.cluster.removed.has(id)) {
      await this.sleep(500 + this.prng.nextInt(1000));
      if (!this.running() || this.cluster.removed.has(id)) break;
      if (node.running !== null) {
        // Joined, not refused: the cluster had removed its old identity already (a removal under
        // way when the disk was wiped, whose answer nobody got). It is a new member, as if re-added.
        if (!this.checks.oldIdentityForgotten(id)) continue; // still trying to join: it must be refused
        this.cluster.newLife(id);
        this.checks.wipedPending.delete(id);
        this.holdDown.delete(id);
        this.wipedReadded++;
        return;
      }
      await this.workload.removeAndSee(id);
    }
    if (!this.cluster.removed.has(id)) return;
    this.wipedRemoved++;
    await this.sleep(1 + this.prng.nextInt(this.d.restartDelayMaxMs));
    // Started before the cluster forgot its old identity (unregisterNode applied), it would be
    // refused again: the operator waits for that, as the refusal's message says.
    while (this.running() && this.members().some((r) => r.state.nodes.has(id))) await this.sleep(100);
    if (!this.running()) return;
    this.checks.wipedPending.delete(id);
    this.cluster.readd(id);
    this.holdDown.delete(id);
    this.wipedReadded++;
    this.cluster.boot(id);
  }

  /** Until the run is over (its checks done): the operator's work goes on while the cluster heals. */
  private running(): boolean {
    return this.phase !== 'done';
  }

  /** The running members' processes (not removed). */
  private members() {
    return [...this.cluster.nodes.values()]
      .filter((n) => !this.cluster.removed.has(n.id) && n.running !== null)
      .map((n) => n.running!);
  }

  // ---- checks ----

  private afterEvent(): void {
    for (const n of this.cluster.nodes.values()) {
      const r = n.running;
      if (r?.core != null && r.storage !== null) this.cluster.checks.afterEvent(r.core, r.storage);
    }
    this.checks.afterEvent();
    if (this.world.events % stateCompareEvery === 0) this.compareStates();
  }

  /** Nodes at the same applied index hold the same metadata. */
  private compareStates(): void {
    const states = [...this.cluster.nodes.values()]
      .map((n) => ({ id: n.id, state: n.running?.state }))
      .filter(
        (x): x is { id: number; state: MetadataState } => x.state !== undefined && x.state.appliedIndex > 0,
      );
    // Only nodes at the same index are compared; large states (the snapshot runs) cost too much per event.
    const counts = new Map<number, number>();
    for (const { state } of states) counts.set(state.appliedIndex, (counts.get(state.appliedIndex) ?? 0) + 1);
    const byIndex = new Map<number, { id: number; json: string }>();
    for (const { id, state } of states) {
      if ((counts.get(state.appliedIndex) ?? 0) < 2 || state.topics.size > stateCompareTopicCountMax)
        continue;
      const json = JSON.stringify(state.toSnapshot());
      const other = byIndex.get(state.appliedIndex);
      if (other === undefined) byIndex.set(state.appliedIndex, { id, json });
      else if (other.json !== json)
        violation(
          'StateMachineSafety',
          `nodes ${other.id} and ${id} hold different metadata at index ${state.appliedIndex}`,
        );
    }
  }

  // ---- liveness ----

  private async liveness(): Promise<void> {
    this.phase = 'healing';
    const c = this.cluster;
    c.net.healAll();
    c.net.weather = calmWeather;
    for (const n of c.nodes.values()) {
      n.disk.faults = noDiskFaults;
      // A WAL segment whose write or fdatasync failed takes no appends until its node restarts
      // (the operator's part); a node that saw injected disk errors is restarted.
      if (n.running !== null && n.disk.stats.injectedErrors > 0 && !c.removed.has(n.id)) c.crash(n.id, false);
      else if (n.running === null) c.boot(n.id);
    }
    const healedAt = this.world.now;
    const deadline = healedAt + livenessBoundMs(this.d);
    let done = false;
    this.spawn(async () => {
      this.status = 'waiting for a leader and every member caught up';
      if (!(await this.untilCaughtUp(deadline))) return;
      this.status = 'appending to every topic';
      if (!(await this.appendEverywhere(deadline))) return;
      this.status = 'reading every topic back';
      done = await this.readBack(deadline);
    });
    await this.world.run({
      untilTime: deadline,
      stop: () => done || this.failure !== null,
      afterEvent: () => this.afterEvent(),
    });
    this.phase = 'done';
    this.livenessMs = this.world.now - healedAt;
    if (this.failure === null && !done) {
      violation(
        'Liveness',
        `not live ${livenessBoundMs(this.d)} ms after healing: ${this.status}; ${this.describeNodes()}`,
      );
    }
    if (this.failure !== null) return;
    // Settled: every copy of a sealed segment must match its seal (within settleMs), and every sweep hold.
    await this.world.run({
      untilTime: this.world.now + settleMs,
      stop: () =>
        this.failure !== null ||
        (this.world.events % settleCheckEvery === 0 && this.checks.unsettled() === null),
      afterEvent: () => this.afterEvent(),
    });
    if (this.failure !== null) return;
    this.checks.sweep();
    this.checks.checkSettled();
  }

  private describeNodes(): string {
    const parts: string[] = [];
    for (const n of this.cluster.nodes.values()) {
      const r = n.running;
      const s = r?.raft?.status();
      parts.push(
        `n${n.id}${this.cluster.removed.has(n.id) ? ' removed' : ''}${n.refused ? ` refused(${n.refused.reason})` : ''}${
          r === null
            ? ' down'
            : ` ${s?.state ?? 'booting'} term ${s?.term} commit ${s?.commit} applied ${r.state.appliedIndex} voters ${s?.voters} learners ${s?.learners}`
        }`,
      );
    }
    return parts.join('; ');
  }

  /** A leader whose every member (voter or learner, not refused) has applied its commit index. */
  private async untilCaughtUp(deadline: number): Promise<boolean> {
    let target = -1;
    while (this.world.now < deadline) {
      const leader = [...this.cluster.nodes.values()]
        .map((n) => n.running)
        .find((r) => r?.core?.role === 'Leader' && r.serving);
      if (leader != null && leader.core !== null) {
        const s = leader.core.status();
        if (target < 0) target = s.commit;
        const behind = [...s.voters, ...s.learners].filter((id) => {
          const n = this.cluster.nodes.get(id);
          if (n === undefined || n.refused !== null || this.cluster.removed.has(id)) return false;
          return n.running === null || !n.running.serving || n.running.state.appliedIndex < target;
        });
        if (behind.length === 0) return true;
        this.status = `${behind.length} member(s) behind commit ${target}: ${behind.join(', ')}`;
      }
      await this.sleep(this.d.tickMs);
    }
    return false;
  }

  private excused(nodeId: number): boolean {
    const n = this.cluster.nodes.get(nodeId);
    return n === undefined || n.refused !== null || this.cluster.rotted.has(nodeId);
  }

  private liveTopics(): TopicModel[] {
    return [...this.oracle.topics.values()].filter(
      (t) => !t.deleteAsked && t.createdAt < Number.POSITIVE_INFINITY,
    );
  }

  /** Every topic whose active segment's leader is not excused takes an append. */
  private async appendEverywhere(deadline: number): Promise<boolean> {
    const fresh = this.oracle.topic('live');
    for (;;) {
      if (this.world.now >= deadline) return false;
      await this.workload.create(fresh);
      if (fresh.createdAt < Number.POSITIVE_INFINITY) break;
      await this.sleep(this.d.tickMs);
    }
    for (const t of this.liveTopics()) {
      for (;;) {
        if (this.world.now >= deadline) return false;
        const meta = this.workload.bestState()?.topics.get(t.name);
        const active = meta?.segments[meta.segments.length - 1];
        if (active !== undefined && this.excused(active.leaderNodeId)) break;
        if (await this.workload.append(t)) break;
        await this.sleep(this.d.tickMs);
      }
    }
    return true;
  }

  /** Reads every topic from its start to its acknowledged end; every acknowledged record must be there. */
  private async readBack(deadline: number): Promise<boolean> {
    for (const t of this.liveTopics()) {
      const got = new Set<number>();
      let offset = this.workload.startMax(t.name);
      while (offset < t.ackedEnd && this.world.now < deadline) {
        const page = await this.workload.readPage(t, offset, 0);
        if ('error' in page) {
          const start = this.workload.startMax(t.name);
          if (start > offset) offset = start;
          else if (this.cluster.dataMayBeLost()) offset = this.skipSegment(t, offset);
          else await this.sleep(this.d.tickMs);
          continue;
        }
        for (let k = 0; k < page.count; k++) got.add(offset + k);
        if (page.count === 0) {
          if (this.cluster.dataMayBeLost()) offset = this.skipSegment(t, offset);
          else
            violation(
              'AckedAppendStays',
              `topic ${t.name}: read-back stops at ${offset} below the acknowledged end ${t.ackedEnd}`,
            );
          continue;
        }
        offset = page.nextOffset;
      }
      if (offset < t.ackedEnd) return false; // out of time
      const start = this.workload.startMax(t.name);
      for (const at of t.acked.keys()) {
        if (at >= start && !got.has(at) && !this.skippable(t, at))
          violation(
            'AckedAppendStays',
            `topic ${t.name}: acknowledged offset ${at} was not read back (start ${start})`,
          );
      }
    }
    return true;
  }

  private skipped = new Map<string, { from: number; to: number }[]>();

  private skipSegment(t: TopicModel, offset: number): number {
    const meta = this.workload.bestState()?.topics.get(t.name);
    const seg = meta?.segments.find(
      (s) => offset >= s.baseOffset && (s.endOffset === null || offset < s.endOffset),
    );
    const to = seg?.endOffset ?? t.ackedEnd;
    const list = this.skipped.get(t.name) ?? [];
    list.push({ from: offset, to });
    this.skipped.set(t.name, list);
    return Math.max(to, offset + 1);
  }

  private skippable(t: TopicModel, at: number): boolean {
    return (this.skipped.get(t.name) ?? []).some((r) => at >= r.from && at < r.to);
  }

  finishStats(realMs: number): WholeNodeStats {
    const c = this.cluster;
    const w = this.workload.stats;
    return {
      events: c.world.events,
      simMs: Math.round(c.world.now),
      realMs: Math.round(realMs),
      clientOps: w.ops,
      acks: w.acks,
      appendedRecords: w.appendedRecords,
      readRecords: w.readRecords,
      crashes: c.stats.kills,
      powerLosses: c.stats.powerLosses,
      faultCrashes: c.stats.faultCrashes,
      exits: c.stats.exits,
      partitions: this.partitions,
      joins: this.joins,
      removals: w.removals,
      removalsRefused: w.removalsRefused,
      snapshotsInstalled: c.stats.snapshotInstalls,
      messages: c.net.stats.delivered,
      oversize: c.net.stats.oversize,
      duplicatedRequests: c.net.stats.duplicatedRequests,
      pauses: this.pauses,
      wipes: this.checks.wipeCount,
      wipedRemoved: this.wipedRemoved,
      wipedReadded: this.wipedReadded,
      livenessMs: Math.round(this.livenessMs),
      replication: { ...this.checks.stats, decodedRecords: this.checks.view.decodedRecords },
    };
  }
}
