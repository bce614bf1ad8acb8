/**
 * Retention, decided once for the whole cluster by the Raft leader from the metadata (never by
 * each node from its own disk): the leading sealed segments that are too old (their newest
 * record is older than retentionMs) or that keep the topic's sealed bytes above retentionBytes.
 * Only a leading run goes, never the active segment, so the topic's offsets stay one range.
 *
 * Segments sealed by builds before their size and time were logged count 0 bytes and never
 * expire by time (nothing in the metadata says how old they are).
 */
import type { TopicMeta } from '../metadata/metadata-state.js';

/** Ids of the leading sealed segments retention removes now (ascending; empty when none). */
export function expiredSegments(topic: TopicMeta, nowMs: number): number[] {
  const { retentionMs, retentionBytes } = topic.retention;
  if (retentionMs === null && retentionBytes === null) return [];
  let sealedBytes = 0;
  for (const s of topic.segments) if (s.endOffset !== null) sealedBytes += s.sizeBytes ?? 0;
  const expired: number[] = [];
  for (const s of topic.segments) {
    if (s.endOffset === null) break;
    const lastMs = s.lastTimestampMs;
    const empty = s.endOffset === s.baseOffset;
    const tooOld =
      retentionMs !== null &&
      (empty || (lastMs !== undefined && (lastMs === null || lastMs < nowMs - retentionMs)));
    const tooBig = retentionBytes !== null && sealedBytes > retentionBytes;
    if (!tooOld && !tooBig) break;
    expired.push(s.id);
    sealedBytes -= s.sizeBytes ?? 0;
  }
  return expired;
}
