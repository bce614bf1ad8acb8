/**
 * Routing: the node that must execute a client request. Topic changes, cursors and membership
 * run on the Raft leader; appends, describe and STATE on the leader of the topic's active
 * segment; a read on the leader of the segment holding its offset; the rest here.
 */
import type { Request } from '../protocol/messages.js';
import { type MetadataState, activeSegment } from '../metadata/metadata-state.js';

export function routeOf(request: Request, state: MetadataState, self: number, raftLeaderId: number): number {
  switch (request.op) {
    case 'createTopic':
    case 'deleteTopic':
    case 'configureTopic':
    case 'consumerReadNext':
    case 'consumerCommit':
    case 'consumerGet':
    case 'removeNode':
      return raftLeaderId || self;
    case 'append':
    case 'describeTopic':
    case 'state': {
      const topic = state.topics.get(request.topic);
      return topic === undefined ? self : activeSegment(topic).leaderNodeId;
    }
    case 'read': {
      const topic = state.topics.get(request.topic);
      if (topic === undefined) return self;
      const segment = topic.segments.find(
        (s) => request.offset >= s.baseOffset && (s.endOffset === null || request.offset < s.endOffset),
      );
      return (segment ?? activeSegment(topic)).leaderNodeId;
    }
    default:
      return self;
  }
}
