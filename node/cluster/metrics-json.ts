/**
 * Seed 002's METRICS JSON (`id`, `state`, `current_term`, `vote`, `last_log_index`,
 * `last_applied`, `current_leader`, `membership_config`, `snapshot`, `replication`) with real
 * values, plus a `storage` object of our own. A node without peers is the leader of a one-voter
 * cluster in term 1; with consensus the Raft status fills these fields instead.
 */

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
    replication,
    storage,
  };
}

/** The status of a node that runs alone: leader of itself in term 1, its log the metadata log. */
export function singleNodeStatus(nodeId: number, appliedIndex: number): RaftStatusForMetrics {
  return {
    state: 'Leader',
    term: 1,
    vote: nodeId,
    lastIndex: appliedIndex,
    applied: appliedIndex,
    leaderId: nodeId,
    voters: [nodeId],
    learners: [],
    snapshot: null,
    progress: {},
  };
}
