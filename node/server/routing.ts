/**
 * Routing: the node that must execute a client request. Topic changes, cursors and membership
 * run on the Raft leader; appends, describe and STATE on the leader of the topic's active
 * segment; a read on the leader of the segment holding its offset; the rest here.
 */
import type { Request } from '../protocol/messages.js';
import { type MetadataState, activeSegment, replicasOf } from '../metadata/metadata-state.js';

export function routeOf(request: Request, state: MetadataState, self: number, raftLeaderId: number): number {
  switch (request.op) {
    case 'createTopic':
    case 'deleteTopic':
    case 'configureTopic':
    case 'consumerReadNext':
    case 'consumerCommit':
    case 'consumerGet':
    case 'consumerList':
    case 'consumerDelete':
    case 'removeNode':
    case 'transferLeader':
    case 'nodeStopping':
      return raftLeaderId || self;
    case 'stream': {
      // Creations and deletions run on the Raft leader; the rest where the end and producers are known.
      const topic = state.topics.get(request.topic);
      const kind = (request.action as { kind?: unknown } | null)?.kind;
      if (kind === 'create' || kind === 'delete' || topic === undefined) return raftLeaderId || self;
      return activeSegment(topic).leaderNodeId;
    }
    case 'append':
    case 'describeTopic':
    case 'state': {
      const topic = state.topics.get(request.topic);
      return topic === undefined ? self : activeSegment(topic).leaderNodeId;
    }
    case 'read':
      return readCandidates(request, state, self)[0] ?? self;
    default:
      return self;
  }
}

/**
 * The nodes that may answer a read, in the order to try them: the active segment's leader alone
 * (it alone knows the high watermark); for a sealed segment this node first when it holds a copy,
 * then the segment's leader, then its other replicas (reads fail over between them; a replica
 * that lacks the data refuses rather than answer with a gap).
 */
export function readCandidates(
  request: Extract<Request, { op: 'read' }>,
  state: MetadataState,
  self: number,
): number[] {
  const topic = state.topics.get(request.topic);
  if (topic === undefined) return [self];
  const segment =
    topic.segments.find(
      (s) => request.offset >= s.baseOffset && (s.endOffset === null || request.offset < s.endOffset),
    ) ?? activeSegment(topic);
  if (segment.endOffset === null) return [segment.leaderNodeId];
  const replicas = replicasOf(segment);
  return replicas.includes(self) ? [self, ...replicas.filter((id) => id !== self)] : [...replicas];
}
