/**
 * TEST ONLY: the defects of issue 8 within the whole-node simulator's reach, put back by name, for
 * the bug-injection tests and `soak.js --bug`.
 */
import type { WholeNodeOptions } from './whole-node-sim.js';

/** Metadata entries that make a snapshot far larger than one peer frame (about 5 MB). */
export const bloatTopicCount = 14_000;

export const bugOptions: Record<string, Partial<WholeNodeOptions>> = {
  /** Defect 5: a snapshot install without the reconciliation start-up does. */
  reconcile: { bugs: { skipReconcileOnSnapshot: true } },
  /** Defect 2: consumer reads without a read barrier. */
  barrier: { bugs: { noReadBarrier: true } },
  /** Defect 4: a snapshot sent as one message, above the peer frame limit. */
  snapshot: { bugs: { snapshotAsOneMessage: true }, overrides: { bloatTopics: bloatTopicCount } },
  /** Not a bug: the same large snapshot, sent in chunks (the control for `snapshot`). */
  bloat: { overrides: { bloatTopics: bloatTopicCount } },
};
