/**
 * Limits and times of segment replication in the topic service, each with its reason.
 */
export const replicationLimits = {
  /** An append waits this long for a quorum of its replica set, then fails UNAVAILABLE (outcome unknown). */
  ackTimeoutMs: 10_000,
  /** Time limit of one replicated append or read between nodes. */
  replicaRequestTimeoutMs: 5_000,
  /** Time limit of one fence request in a recovery (a dead replica must not hold the recovery up for long). */
  fenceTimeoutMs: 1_500,
  /** Records and bytes per catch-up message (read back from the leader's WAL) and per recovery copy. */
  catchUpRecordCountMax: 2_000,
  catchUpByteCountMax: 1024 * 1024,
  /** Backoff of a follower whose sends failed: doubling from the first to the last. */
  retryBackoffMsMin: 20,
  retryBackoffMsMax: 500,
  /** Fence rounds a recovery tries before it gives up (the controller tries again later). */
  fenceRoundCountMax: 4,
  /** Waiting appends per segment (their acknowledgements); one more fails UNAVAILABLE. */
  waitingAppendCountMax: 100_000,
  /** Time a repair waits for its target to hold a whole copy (a large segment at the bounded rate). */
  copyTimeoutMs: 10 * 60_000,
  /** Repair copies a node makes at once (each a whole sealed segment). */
  concurrentCopyCountMax: 4,
  /** Bandwidth of one repair copy, so re-replication does not starve appends and reads. */
  repairBytesPerSecMax: 64 * 1024 * 1024,
  /** Fetch rounds a replica makes to complete its copy of a sealed segment before it gives up for now. */
  tailFetchRoundCountMax: 10_000,
} as const;
