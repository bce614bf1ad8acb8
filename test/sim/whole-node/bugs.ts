/**
 * TEST ONLY: the defects of issue 8 within the whole-node simulator's reach, put back by name, for
 * the bug-injection tests and `soak.js --bug`.
 */
import type { WholeNodeOptions } from './whole-node-sim.js';

/**
 * A run whose metadata grows past one peer frame while a follower is down: 14,000 topics of about
 * 365 bytes each in the state, compacted at 12,000 entries, give a snapshot of about 4.4 MB
 * against a frame limit of 4 MiB + 64 KiB; three voters and no chaos, so the follower's return is
 * the only thing that needs the snapshot.
 */
const bloat = { bloatTopics: 14_000, compactEntryCount: 12_000, initialNodes: 3, chaosGapMs: 0 } as const;

export const bugOptions: Record<string, Partial<WholeNodeOptions>> = {
  /** Defect 5: a snapshot install without the reconciliation start-up does. */
  reconcile: { bugs: { skipReconcileOnSnapshot: true } },
  /** Defect 2: consumer reads without a read barrier. */
  barrier: { bugs: { noReadBarrier: true } },
  /** Defect 4: a snapshot sent as one message, above the peer frame limit. */
  snapshot: { bugs: { snapshotAsOneMessage: true }, overrides: bloat },
  /** Not a bug: the same large snapshot, sent in chunks (the control for `snapshot`). */
  bloat: { overrides: bloat },
};
