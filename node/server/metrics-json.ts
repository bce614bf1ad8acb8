/**
 * The METRICS JSON. It carries two shapes side by side, so that both kinds of reader work:
 *
 * - seed 002's documented fields: `id`, `state`, `current_term`, `vote`, `last_log_index`,
 *   `last_applied` (a number), `current_leader`, `membership_config.{nodes,voters,learners}`,
 *   `snapshot.{index,term}`, `replication[id].{match_index,next_index}`;
 * - what real Walrus answers, because its METRICS is openraft's `RaftMetrics` serialised: a log
 *   position is a LogId `{leader_id: {term, node_id}, index}`, `membership_config` holds `log_id`
 *   and `membership.{configs, nodes}`, `replication` has a LogId per member (the leader too),
 *   plus `running_state`, `purged`, `millis_since_quorum_ack`, `last_quorum_acked`, `heartbeat`.
 *
 * Where one field would need two types the seed's wins; docs/protocol.md lists every such field.
 * `snapshot_transfer` (chunked snapshot transfer counts), a `storage` object, a `connections`
 * object (client connections and the buffered-input budget, transport/input-budget.ts) and
 * `removing` (the node a remove-node is under way for, from the metadata; null: none) of our own
 * come last. Pure: the caller passes every figure and the clock.
 */
import type { LeavingMark } from '../metadata/metadata-state.js';
import type { LogPosition, RaftStatusForMetrics } from '../metadata/raft-node.js';

interface LogIdJson {
  readonly leader_id: { readonly term: number; readonly node_id: number | null } | null;
  readonly index: number;
}

function logIdJson(p: LogPosition | null): LogIdJson | null {
  if (p === null) return null;
  return {
    leader_id: p.term === null ? null : { term: p.term, node_id: p.leaderId },
    index: p.index,
  };
}

/** openraft serialises an instant as nanoseconds since the Unix epoch. */
function epochNanos(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms) * 1_000_000;
}

const byNumber = (a: number, b: number): number => a - b;

/** The client port's figures: open connections and the buffered-input budget. */
export interface ConnectionFigures {
  readonly count: number;
  readonly bufferedInputBytes: number;
  readonly bufferedInputBytesMax: number;
  readonly bufferedInputBytesPeak: number;
  readonly bufferedInputRefusals: number;
  readonly bufferedInputConnectionRefusals: number;
}

export function metricsJson(
  nodeId: number,
  raft: RaftStatusForMetrics,
  /** Counters, and the disk's `disk_free_bytes`, `disk_reserve_bytes` (null when not known) and `disk_full`. */
  storage: Readonly<Record<string, number | boolean | null>>,
  nowMs: number,
  connections?: ConnectionFigures,
  /** The metadata's leaving mark (undefined: the field is left out). */
  leaving?: LeavingMark | null,
): Record<string, unknown> {
  const isLeader = raft.state === 'Leader';
  const replication: Record<string, unknown> = {};
  if (isLeader) {
    const ids = Object.keys(raft.progress).map(Number).sort(byNumber);
    for (const id of ids) {
      const p = raft.progress[String(id)]!;
      const matched = logIdJson(p.matched);
      replication[String(id)] = {
        match_index: p.match,
        next_index: p.next,
        leader_id: matched?.leader_id ?? null,
        index: p.match,
      };
    }
  }
  let heartbeat: Record<string, number | null> | null = null;
  if (isLeader && raft.ackedAtMs !== null) {
    heartbeat = {};
    for (const id of Object.keys(raft.ackedAtMs).map(Number).sort(byNumber))
      heartbeat[String(id)] = epochNanos(raft.ackedAtMs[String(id)] ?? null);
  }
  const voters = [...raft.voters].sort(byNumber);
  const learners = [...raft.learners].sort(byNumber);
  const nodes = [...new Set([...voters, ...learners])].sort(byNumber);
  const nodeInfo: Record<string, { addr?: string; client_addr?: string }> = {};
  for (const id of nodes) {
    const a = raft.addresses[String(id)];
    nodeInfo[String(id)] = a === undefined ? {} : { addr: a.raftAddr, client_addr: a.clientAddr };
  }
  // In openraft terms a follower that accepted a leader without voting holds that leader's vote;
  // with neither, node 0 (no node has id 0), as openraft's default vote.
  const votedFor = raft.vote ?? raft.leaderId ?? 0;
  const quorumAcked = isLeader ? raft.quorumAckedAtMs : null;
  const snapshot = logIdJson(raft.snapshot);
  return {
    running_state: raft.running ? { Ok: null } : { Err: 'Stopped' },
    id: nodeId,
    current_term: raft.term,
    vote: {
      term: raft.term,
      node_id: votedFor,
      committed: raft.leaderId !== null && raft.leaderId === votedFor,
      leader_id: { term: raft.term, node_id: votedFor },
    },
    last_log_index: raft.lastIndex,
    last_applied: raft.applied,
    snapshot:
      raft.snapshot === null
        ? null
        : { index: raft.snapshot.index, term: raft.snapshot.term, leader_id: snapshot?.leader_id ?? null },
    purged: snapshot,
    state: raft.state === 'PreCandidate' ? 'Candidate' : raft.state,
    current_leader: raft.leaderId,
    millis_since_quorum_ack: quorumAcked === null ? null : Math.max(0, Math.round(nowMs - quorumAcked)),
    last_quorum_acked: epochNanos(quorumAcked),
    membership_config: {
      nodes,
      voters,
      learners,
      log_id: logIdJson(raft.membershipLogId),
      membership: {
        configs: voters.length === 0 ? [] : [voters],
        nodes: nodeInfo,
      },
    },
    heartbeat,
    replication,
    ...(raft.snapshotTransfer === undefined ? {} : { snapshot_transfer: snakeCase(raft.snapshotTransfer) }),
    storage,
    ...(connections === undefined ? {} : { connections: snakeCase(connections) }),
    ...(leaving === undefined
      ? {}
      : {
          removing:
            leaving === null
              ? null
              : { node_id: leaving.nodeId, by_node_id: leaving.byNodeId, since_ms: leaving.sinceMs },
        }),
  };
}

/** Counts of chunked snapshot transfers (sent, failed, deferred, received, refused, abandoned). */
function snakeCase(counts: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counts) as [string, number][])
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return out;
}
