/**
 * The Walrus `STATE <topic>` JSON: `topic`, `current_segment`, `leader_node`, `sealed_segments`
 * (id → record count), `segment_leaders` (id → node), Walrus's `last_sealed_entry_offset`, plus our
 * offsets, retention and replication: `segment_replicas` (id → nodes holding a copy, leader first),
 * `segment_epochs` (id → fence epoch) and `under_replicated_segments` (segments with a copy on a node
 * that is not a voter or not reachable from the answering node) and `removing_node` (the node a
 * remove-node is under way for, whose copies are being moved off: null when none).
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { assertTopicName } from '../protocol/topic-name.js';
import { activeSegment, epochOf, replicasOf, topicStartOffset } from '../metadata/metadata-state.js';
import type { TopicService } from '../topics/topic-service.js';

export function stateJson(topics: TopicService, name: string): Record<string, unknown> {
  assertTopicName(name);
  const topic = topics.metadata.topics.get(name);
  if (topic === undefined) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${name}' does not exist`);
  const active = activeSegment(topic);
  const sealed: Record<string, number> = {};
  const leaders: Record<string, number> = {};
  const replicas: Record<string, readonly number[]> = {};
  const epochs: Record<string, number> = {};
  for (const s of topic.segments) {
    leaders[String(s.id)] = s.leaderNodeId;
    replicas[String(s.id)] = replicasOf(s);
    epochs[String(s.id)] = epochOf(s);
    if (s.endOffset !== null) sealed[String(s.id)] = s.endOffset - s.baseOffset;
  }
  return {
    topic: name,
    current_segment: active.id,
    leader_node: active.leaderNodeId,
    last_sealed_entry_offset: active.baseOffset,
    sealed_segments: sealed,
    segment_leaders: leaders,
    start_offset: topicStartOffset(topic),
    end_offset: topics.reader.knownEnd(topic),
    retention_ms: topic.retention.retentionMs,
    retention_bytes: topic.retention.retentionBytes,
    segment_replicas: replicas,
    segment_epochs: epochs,
    under_replicated_segments: topics.underReplicatedSegments(topic),
    removing_node: topics.metadata.leaving?.nodeId ?? null,
  };
}
