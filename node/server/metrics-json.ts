/**
 * Seed 002's METRICS JSON (`id`, `state`, `current_term`, `vote`, `last_log_index`,
 * `last_applied`, `current_leader`, `membership_config`, `snapshot`, `replication`) with real
 * values from the node's Raft status, plus a `storage` object of our own.
 */
import type { RaftStatusForMetrics } from '../cluster/raft-node.js';

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
