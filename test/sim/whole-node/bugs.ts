/**
 * TEST ONLY: the defects of issue 8 within the whole-node simulator's reach, put back by name, each
 * with the run configuration that brings out its symptom (for the bug-injection tests and
 * `soak.js --bug`).
 */
import { type Derived, type WholeNodeOptions, profileFaultMs } from './whole-node-sim.js';

const none = {
  crash: 0,
  partition: 0,
  isolateLeader: 0,
  weather: 0,
  disk: 0,
  join: 0,
  bitFlip: 0,
  pause: 0,
  wipe: 0,
  nothing: 0,
};

/**
 * Metadata that grows past one peer frame while a follower is down: 14,000 topics of about 365
 * bytes each in the state, compacted at 12,000 entries, give a snapshot of about 4.4 MB against a
 * frame limit of 4 MiB + 64 KiB; three voters and no chaos, so the follower's return is the only
 * thing that needs the snapshot.
 */
const bloat: Partial<Derived> = {
  bloatTopics: 14_000,
  compactEntryCount: 12_000,
  initialNodes: 3,
  chaosGapMs: 0,
};

/** Frequent compactions and crashes: restarted nodes catch up by snapshot, then serve. */
const snapshotInstalls: Partial<Derived> = {
  initialNodes: 3,
  compactEntryCount: 16,
  chaosGapMs: 500,
  clients: 5,
  thinkMsMax: 5,
  topicCountMax: 10,
  restartDelayMaxMs: 3000,
  chaosMix: { ...none, crash: 3, partition: 1, isolateLeader: 1 },
};

/** Leader isolations and quick restarts under many cursor reads with short client timeouts. */
const leaderChanges: Partial<Derived> = {
  initialNodes: 3,
  tickMs: 50,
  electionTick: 10,
  chaosGapMs: 400,
  clients: 12,
  thinkMsMax: 2,
  topicCountMax: 1,
  restartDelayMaxMs: 50,
  powerLossShare: 0,
  clientTimeoutMs: 200,
  chaosMix: { ...none, crash: 1, isolateLeader: 2 },
};

/** Removals among five nodes with several topics: a removed node often leads an active segment. */
const removals: Partial<Derived> = {
  initialNodes: 5,
  removals: true,
  topicCountMax: 6,
  chaosGapMs: 0,
  clients: 4,
};

/** Three nodes or more, dense faults, short: the replication defects show within seconds. */
const replication: Partial<WholeNodeOptions> = {
  profile: 'quick',
  faultMs: profileFaultMs.quick,
  overrides: { initialNodes: 3 },
};

export const bugOptions: Record<string, Partial<WholeNodeOptions>> = {
  /** Replication: the high watermark needs one replica fewer than a majority. */
  quorum: { ...replication, bugs: { quorumMinusOne: true } },
  /** Replication: replicas never cut the tail past a seal. */
  tail: { ...replication, bugs: { keepTailPastSeal: true } },
  /** The control for `quorum` and `tail`. */
  'replication-control': replication,
  /** Defect 4: a snapshot sent as one message, above the peer frame limit. */
  snapshot: { bugs: { snapshotAsOneMessage: true }, overrides: bloat },
  /** The control for `snapshot`: the same large snapshot, sent in chunks. */
  bloat: { overrides: bloat },
  /** Defect 5: a snapshot install without the reconciliation start-up does. */
  reconcile: { bugs: { skipReconcileOnSnapshot: true }, overrides: snapshotInstalls },
  /** The control for `reconcile`. */
  'reconcile-control': { overrides: snapshotInstalls },
  /** Defect 2: consumer reads without a read barrier. */
  barrier: { bugs: { noReadBarrier: true }, overrides: leaderChanges },
  /** The control for `barrier`. */
  'barrier-control': { overrides: leaderChanges },
  /** Defect 7: remove-node without handing off the segments the node leads. */
  removal: { bugs: { removeWithoutHandOff: true }, overrides: removals },
  /** The control for `removal`. */
  'removal-control': { overrides: removals },
};
