/**
 * `remove-node N` on the Raft leader. Until segment data is replicated, a segment's records live
 * only on its leader, so a removal must not strand them:
 * 1. N gets no new topic or segment from now on (the controller passes it over);
 * 2. if N leads the active segment of any topic, N is asked to hand them off (seal them, so the
 *    next segments open on other voters); if it cannot be reached the removal is refused
 *    (UNAVAILABLE): appends and reads of those topics would fail for good;
 * 3. if N still holds records of sealed segments the removal is refused (CONFLICT): the records
 *    would be lost. Delete those topics, or let retention drop the segments, first.
 * Then the configuration change runs.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { type MetadataState, activeSegment } from '../metadata/metadata-state.js';
import type { Controller } from '../controller/controller.js';
import type { ClusterView } from '../topics/ports.js';
import type { TopicService } from '../topics/topic-service.js';

export const nodeRemovalLimits = {
  /** Topics named in a refusal message (the count is always given). */
  topicNamesInMessageMax: 10,
} as const;

export async function removeNode(
  nodeId: number,
  self: number,
  topics: TopicService,
  controller: Controller,
  cluster: ClusterView,
): Promise<{ removed: boolean }> {
  const state = topics.metadata;
  if (!state.nodes.has(nodeId) && !cluster.voters().includes(nodeId))
    return cluster.removeNode(nodeId).then((r) => ({ removed: r }));
  refuseIfHolding(state, nodeId);
  controller.markLeaving(nodeId);
  try {
    if (leadsActive(state, nodeId).length > 0) {
      try {
        if (nodeId === self) await topics.appender.handOff(nodeId);
        else await cluster.forward<'handOff'>(nodeId, { op: 'handOff', nodeId });
        await cluster.catchUpWithLeader();
      } catch (error) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `node ${nodeId} leads the active segment of ${describe(leadsActive(state, nodeId))} and could not hand them off (${(error as Error).message}); bring it back and retry`,
          { cause: error },
        );
      }
      const still = leadsActive(state, nodeId);
      if (still.length > 0) {
        throw new WalrusError(
          ErrorCode.UNAVAILABLE,
          `node ${nodeId} still leads the active segment of ${describe(still)}; retry the removal`,
        );
      }
    }
    // The segments just handed off may hold records too.
    refuseIfHolding(state, nodeId);
    return { removed: await cluster.removeNode(nodeId) };
  } finally {
    controller.unmarkLeaving(nodeId);
  }
}

function leadsActive(state: MetadataState, nodeId: number): string[] {
  const names: string[] = [];
  for (const topic of state.topics.values())
    if (activeSegment(topic).leaderNodeId === nodeId) names.push(topic.name);
  return names;
}

function refuseIfHolding(state: MetadataState, nodeId: number): void {
  const holding = holdsRecords(state, nodeId);
  if (holding.length > 0) {
    throw new WalrusError(
      ErrorCode.CONFLICT,
      `node ${nodeId} holds the only copy of records of ${describe(holding)}; removing it would lose them. Delete those topics or let retention drop their segments first`,
    );
  }
}

function holdsRecords(state: MetadataState, nodeId: number): string[] {
  const names: string[] = [];
  for (const topic of state.topics.values()) {
    if (
      topic.segments.some(
        (s) => s.leaderNodeId === nodeId && s.endOffset !== null && s.endOffset > s.baseOffset,
      )
    )
      names.push(topic.name);
  }
  return names;
}

function describe(names: readonly string[]): string {
  const shown = names.slice(0, nodeRemovalLimits.topicNamesInMessageMax).map((n) => `'${n}'`);
  const more = names.length > shown.length ? ` and ${names.length - shown.length} more` : '';
  return `${names.length} topic(s): ${shown.join(', ')}${more}`;
}
