/**
 * RaftConfig: the knobs of one Raft member, with defaults, units and `validateRaftConfig()`.
 * Time is counted in ticks (the driver calls `tick()` at a fixed interval, e.g. 100 ms).
 */
import { RaftError } from './raft-error.js';

/** Behaviour switches that deliberately break Raft, so the simulator can prove it catches bugs. */
export interface RaftTestOnlyBugs {
  /** TEST ONLY: grant votes without the log up-to-date check (breaks leader completeness). */
  readonly grantVoteIgnoringLog?: boolean;
  /** TEST ONLY: commit entries of older terms by counting replicas (Raft paper Figure 8). */
  readonly commitOldTermByCounting?: boolean;
  /** TEST ONLY: answer ReadIndex at once, without a quorum confirming the leadership (stale reads). */
  readonly readIndexWithoutQuorum?: boolean;
}

export interface RaftConfig {
  /** This member's id (> 0). */
  readonly id: number;
  /** Ticks without hearing from a leader before a follower campaigns; the actual timeout is random in [electionTick, 2*electionTick). Default 10. */
  readonly electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick. Default 1. */
  readonly heartbeatTick: number;
  /** Run a PreVote round before incrementing the term (a partitioned node cannot disrupt). Default true. */
  readonly preVote: boolean;
  /** Leader steps down if it has not heard from a quorum within electionTick; followers with a live leader ignore votes (lease). Default true. */
  readonly checkQuorum: boolean;
  /** Unacknowledged App messages in flight per follower in replicate state. Default 256. */
  readonly inflightMsgCountMax: number;
  /** Unacknowledged entry bytes in flight per follower. Default 8 MiB. */
  readonly inflightBytesMax: number;
  /** Entry bytes in one App message (at least one entry is always sent). Default 1 MiB. */
  readonly appendBytesMax: number;
  /** Entry bytes handed to the application in one Ready (at least one entry). Default 16 MiB. */
  readonly applyBytesMax: number;
  /** Uncommitted proposal bytes a leader accepts before refusing with BUSY. Default 64 MiB. */
  readonly uncommittedBytesMax: number;
  /** Outgoing messages buffered between two ready() calls; beyond it messages are dropped (Raft tolerates loss). Default 65536. */
  readonly outboxCountMax: number;
  /** ReadIndex requests a leader holds waiting for a quorum to confirm it; beyond it BUSY. Default 4096. */
  readonly pendingReadCountMax: number;
  /** Ticks a follower may stay in snapshot state without an answer before the leader probes again. Default 3*electionTick. */
  readonly snapshotTimeoutTick: number;
  /** TEST ONLY: known bugs to inject. Never set in production. */
  readonly testOnlyBugs?: RaftTestOnlyBugs;
}

export const raftConfigDefaults = {
  electionTick: 10,
  heartbeatTick: 1,
  preVote: true,
  checkQuorum: true,
  inflightMsgCountMax: 256,
  inflightBytesMax: 8 * 1024 * 1024,
  appendBytesMax: 1024 * 1024,
  applyBytesMax: 16 * 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  outboxCountMax: 65_536,
  pendingReadCountMax: 4096,
} as const;

/** Fills defaults for every field not given. */
export function makeRaftConfig(partial: Partial<RaftConfig> & { id: number }): RaftConfig {
  const electionTick = partial.electionTick ?? raftConfigDefaults.electionTick;
  return validateRaftConfig({
    ...raftConfigDefaults,
    snapshotTimeoutTick: 3 * electionTick,
    ...partial,
  });
}

/** Throws RaftError(INVALID_CONFIG) when the config is unusable; returns it frozen otherwise. */
export function validateRaftConfig(c: RaftConfig): RaftConfig {
  const fail = (why: string): never => {
    throw new RaftError('INVALID_CONFIG', `invalid RaftConfig: ${why}`);
  };
  const positiveInt = (name: string, v: number): void => {
    if (!Number.isSafeInteger(v) || v <= 0) fail(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt('id', c.id);
  positiveInt('electionTick', c.electionTick);
  positiveInt('heartbeatTick', c.heartbeatTick);
  positiveInt('inflightMsgCountMax', c.inflightMsgCountMax);
  positiveInt('inflightBytesMax', c.inflightBytesMax);
  positiveInt('appendBytesMax', c.appendBytesMax);
  positiveInt('applyBytesMax', c.applyBytesMax);
  positiveInt('uncommittedBytesMax', c.uncommittedBytesMax);
  positiveInt('outboxCountMax', c.outboxCountMax);
  positiveInt('pendingReadCountMax', c.pendingReadCountMax);
  positiveInt('snapshotTimeoutTick', c.snapshotTimeoutTick);
  if (c.electionTick <= c.heartbeatTick) fail('electionTick must be greater than heartbeatTick');
  if (c.inflightBytesMax < c.appendBytesMax) fail('inflightBytesMax must be >= appendBytesMax');
  return Object.freeze({ ...c });
}

/** `RaftConfig.validate(c)`, `RaftConfig.make({ id })`, `RaftConfig.defaults` (value side of the type). */
export const RaftConfig = {
  validate: validateRaftConfig,
  make: makeRaftConfig,
  defaults: raftConfigDefaults,
} as const;
