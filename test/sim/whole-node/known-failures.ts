/**
 * Seeds of npm test's whole-node schedules (profile `quick`) that fail today because of defects in
 * node/ code the simulator found (docs/replication.md, "How it is checked"; the diagnosis of each
 * defect is in the comment of its entry). They run as ava `test.failing`: reported as known
 * failures while the defect is there, and failing — "expected to fail, but succeeded" — once it is
 * fixed, so that the entry is removed. A fix may change other seeds' schedules too: any seed not
 * listed here must pass.
 */

export interface KnownFailure {
  /** The defect (see knownDefects). */
  readonly defect: keyof typeof knownDefects;
  /** What the run reports today (the violation's first line). */
  readonly violation: RegExp;
}

export const knownDefects = {
  /**
   * A segment leader appends under the epoch of the recovery that fences it. A leader that has
   * applied fenceSegment (epoch e > 1) but has no WAL copy of its segment yet (its first append
   * comes after it was cut off or paused) creates the copy in Appender.ensureLocalSegment and
   * starts its SegmentReplicator with epochOf(active) = e, the recovery's epoch (the same holds
   * for a restarted sole replica, startReplicator from the isSoleReplica branch). The replicas,
   * fenced at e, accept its appends; a quorum acknowledges them; the recovery then seals at the
   * end it planned from the fence answers, below them (S1: acknowledged records cut; S6).
   */
  A: 'leader appends under a recovery epoch (appender.ts ensureLocalSegment/startReplicator)',
  /**
   * A replica refuses a new segment leader whose clock is behind. checkReplicatedBatch
   * (wal/batch-check.ts) refuses records whose timestamp is below the last timestamp of the
   * replica's whole log (lastLogTimestampMs over every local segment), but each segment leader
   * stamps records with its own clock (and its own WAL's last timestamp of the topic). A replica
   * that holds the previous segment, written by a leader whose clock is ahead, refuses every
   * record of the next segment: "replicated record N has a timestamp that goes back". Its copy
   * never completes after the seal (S8), and a recovery that must copy to it never completes: the
   * topic is unavailable for good (Liveness).
   */
  B: 'replica refuses timestamps below its log across segment leaders (wal/batch-check.ts)',
  /**
   * An old leader seals its copy past the seal. ReplicaService.completeSealed compares the sealed
   * end with the copy's written end (segmentInfo().endOffset) and awaits only the replicated
   * appends it accepted (lastAppend); the leader's own appends assigned before it was cut off or
   * stopped are still in the WAL's group-commit queue (assignedEndOffset above endOffset), and
   * wal.sealActive drains that queue into the copy before sealing it: the sealed copy ends past
   * the seal with a record that was refused FENCED ("it was not written") (S8).
   */
  E: 'old leader seals its copy with queued appends past the seal (replica-service.ts completeSealed)',
  /**
   * Removing a follower replica strands its segments. server/node-removal.ts refuses a removal
   * only for segments the node leads (refuseIfHolding, leadsActive); nothing re-replicates the
   * segments it follows. An active segment whose replica set was two (placed while two voters
   * were up) loses its quorum for good when one follower is removed: every recovery fails
   * ("only 1 answering replicas for a quorum of 2") and the topic takes no append (Liveness).
   * Quick seed 100430 (and, with A, B and E patched, 101335).
   */
  C: 'remove-node ignores the segments the node follows (server/node-removal.ts)',
  /**
   * A wiped replica counts again once re-added under its old id (S9). Replica sets name node ids,
   * not incarnations: a follower wiped after acknowledging records, removed and re-added, answers
   * a fence with an empty copy; with the other follower behind, the recovery's n − Qa + 1 answers
   * are the two that lack the acknowledged records, and it seals below them (S1). Reproduced by
   * replication-scenarios.test.ts (the seeded runs rarely complete a removal: see C).
   */
  D: 'a wiped, removed and re-added replica answers fences for records it lost',
  /**
   * A replica's open copy of a segment retention dropped blocks the topic for good.
   * Reconciler.deleteDropped deletes only sealed copies below the start, and
   * ReplicaService.completeSealed returns true for a segment the metadata no longer lists without
   * sealing the local copy; so a replica that restarted with an open (lagging) copy of a segment
   * retention then dropped can never create its copy of a later segment ("topic already has an
   * active segment"), and a recovery that must copy to it never completes (Liveness). Quick seed
   * 100350.
   */
  F: 'an open copy of a dropped segment blocks later segments (replica-service.ts completeSealed, reconciler.ts deleteDropped)',
} as const;

export const knownFailures: ReadonlyMap<number, KnownFailure> = new Map([
  [100034, { defect: 'A', violation: /^invariant S6: / }],
  [100080, { defect: 'B', violation: /^invariant Liveness: / }],
  [100089, { defect: 'A', violation: /^invariant S6: / }],
  [100129, { defect: 'A', violation: /^invariant S6: / }],
  [100163, { defect: 'E', violation: /^invariant S8: / }],
  [100183, { defect: 'A', violation: /^invariant S6: / }],
  // Beyond npm test's 200 seeds (run as well, so that every defect has a failing seed in npm test):
  [100350, { defect: 'F', violation: /^invariant Liveness: / }],
  [100430, { defect: 'C', violation: /^invariant Liveness: / }],
]);
