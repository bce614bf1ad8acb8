/**
 * Quorum arithmetic of a segment's replica set (BookKeeper's Qa and fencing coverage, invariants
 * S4 and S6): an append is acknowledged once a majority of the replica set holds it durable, and a
 * recovery needs answers from enough replicas that every possible acknowledgement quorum overlaps
 * them. Pure: no clock, I/O or randomness.
 */
import assert from 'node:assert/strict';

/** Replicas that must hold a record durable before it is acknowledged: a majority. */
export function ackQuorum(replicaCount: number): number {
  assert.ok(Number.isSafeInteger(replicaCount) && replicaCount >= 1, 'a replica set has at least one member');
  return Math.floor(replicaCount / 2) + 1;
}

/**
 * Fenced replicas a recovery must hear from (S6: cohort − Qa + 1): then every set of Qa replicas
 * that could have acknowledged a record shares at least one member with the answers, and the old
 * leader can no longer reach Qa.
 */
export function fenceQuorum(replicaCount: number): number {
  return replicaCount - ackQuorum(replicaCount) + 1;
}

/**
 * The high watermark: the greatest end offset that at least Qa replicas hold durable. `durableEnds`
 * has one entry per replica that reported one (the leader's own included); a replica that reported
 * nothing holds nothing above `baseOffset`.
 */
export function highWatermark(
  durableEnds: readonly number[],
  replicaCount: number,
  baseOffset: number,
): number {
  const need = ackQuorum(replicaCount);
  if (durableEnds.length < need) return baseOffset;
  const sorted = [...durableEnds].sort((a, b) => b - a);
  return Math.max(baseOffset, sorted[need - 1]!);
}
