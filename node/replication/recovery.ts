/**
 * The decision of a segment recovery (BookKeeper's ledger recovery, invariants S1-S3, S6, S7): once
 * the replicas of a segment whose leader is dead or cut off are fenced at a new epoch, where the
 * segment is sealed and which replicas must first receive the records they lack so that every
 * record below the seal is on an acknowledgement quorum. Pure.
 *
 * Why the greatest end among the answers: an acknowledged record is on Qa replicas; the answers
 * come from at least cohort − Qa + 1 fenced replicas, so at least one of them holds every
 * acknowledged record. Records above the least acknowledged end may be included: they were never
 * acknowledged, and a seal makes them permanent before anyone reads them. Every copy of a segment
 * comes from its one leader, so two replicas never hold different records at one offset (S5).
 */
import { ackQuorum, fenceQuorum } from './quorum.js';

/** What one fenced replica answered. */
export interface FenceReport {
  readonly nodeId: number;
  /** The epoch it holds after the fence (higher than asked: a newer recovery fenced it). */
  readonly epoch: number;
  /** Its end offset of the segment: the base when it holds no record of it. */
  readonly endOffset: number;
}

export type RecoveryPlan =
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'superseded'; readonly epoch: number }
  | {
      readonly kind: 'seal';
      readonly endOffset: number;
      /** A replica holding every record below endOffset (the copy source). */
      readonly sourceNodeId: number;
      /** Replicas that must receive [their end, endOffset) before the seal is logged. */
      readonly copyTo: readonly { readonly nodeId: number; readonly fromOffset: number }[];
    };

export function planRecovery(
  segment: { readonly baseOffset: number; readonly replicas: readonly number[] },
  epoch: number,
  reports: readonly FenceReport[],
): RecoveryPlan {
  const members = new Set(segment.replicas);
  const fenced = new Map<number, FenceReport>();
  for (const r of reports) {
    if (!members.has(r.nodeId)) continue;
    if (r.epoch > epoch) return { kind: 'superseded', epoch: r.epoch };
    if (r.epoch === epoch) fenced.set(r.nodeId, r);
  }
  const n = segment.replicas.length;
  const need = fenceQuorum(n);
  if (fenced.size < need) {
    return { kind: 'wait', reason: `${fenced.size} of ${n} replicas fenced; ${need} needed` };
  }
  const answers = [...fenced.values()].sort((a, b) => b.endOffset - a.endOffset || a.nodeId - b.nodeId);
  const source = answers[0]!;
  const endOffset = Math.max(segment.baseOffset, source.endOffset);
  const holding = answers.filter((r) => r.endOffset >= endOffset).length;
  const missing = Math.max(0, ackQuorum(n) - holding);
  const behind = answers.filter((r) => r.endOffset < endOffset);
  // Too few answers to bring the end to a quorum (a replica set of 2 or 4 with a member dead):
  // sealing anyway would leave records below the seal on fewer than Qa copies (S3). The recovery
  // waits for another replica; an active segment opened with fewer copies than its factor is rolled
  // over as soon as a voter is back (controller.ts), which keeps this window short.
  if (behind.length < missing) {
    return {
      kind: 'wait',
      reason: `only ${holding + behind.length} answering replicas for a quorum of ${ackQuorum(n)}`,
    };
  }
  return {
    kind: 'seal',
    endOffset,
    sourceNodeId: source.nodeId,
    // The most advanced first: least to copy.
    copyTo: behind
      .slice(0, missing)
      .map((r) => ({ nodeId: r.nodeId, fromOffset: Math.max(segment.baseOffset, r.endOffset) })),
  };
}
