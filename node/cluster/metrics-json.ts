/**
 * Seed 002's METRICS JSON (`id`, `state`, `current_term`, `vote`, `last_log_index`,
 * `last_applied`, `current_leader`, `membership_config`, `snapshot`, `replication`) with real
 * values from the node's Raft status, plus `storage` and `snapshot_transfer` (counts of chunked
 * snapshot transfers sent, failed, deferred, received, refused and abandoned) objects of our own.
 */
import type { SnapshotTransferStats } from './snapshot-transfer.js';

export interface RaftStatusForMetrics {
  readonly state: 'Leader' | 'Follower' | 'Candidate' | 'PreCandidate' | 'Learner';
  readonly term: number;
  readonly vote: number | null;
  readonly lastIndex: number;
  readonly applied: number;
  readonly leaderId: number | null;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly snapshot: { readonly index: number; readonly term: number } | null;
  /** Leader only: per follower. */
  readonly progress: Readonly<Record<string, { readonly match: number; readonly next: number }>>;
  /** Chunked snapshot transfers to and from this node (snapshot-transfer.ts). */
  readonly snapshotTransfer?: SnapshotTransferStats;
}

function snakeCase(counts: SnapshotTransferStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counts)) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return out;
}

export function metricsJson(
  nodeId: number,
  raft: RaftStatusForMetrics,
  storage: Readonly<Record<string, number>>,
): Record<string, unknown> {
  const replication: Record<string, { match_index: number; next_index: number }> = {};
  if (raft.state === 'Leader') {
    for (const [id, p] of Object.entries(raft.progress)) {
      if (Number(id) !== nodeId) replication[id] = { match_index: p.match, next_index: p.next };
    }
  }
  const nodes = [...new Set([...raft.voters, ...raft.learners])].sort((a, b) => a - b);
  return {
    id: nodeId,
    state: raft.state,
    current_term: raft.term,
    vote: raft.vote === null ? null : { term: raft.term, node_id: raft.vote, committed: raft.applied > 0 },
    last_log_index: raft.lastIndex,
    last_applied: raft.applied,
    current_leader: raft.leaderId,
    membership_config: {
      nodes,
      voters: [...raft.voters].sort((a, b) => a - b),
      learners: [...raft.learners].sort((a, b) => a - b),
    },
    snapshot: raft.snapshot,
    ...(raft.snapshotTransfer === undefined ? {} : { snapshot_transfer: snakeCase(raft.snapshotTransfer) }),
    replication,
    storage,
  };
}
