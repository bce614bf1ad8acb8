/**
 * `remove-node N` on the Raft leader. A removal must not strand a topic or lose a copy:
 * 1. N gets no new topic or segment from now on (the controller passes it over);
 * 2. if N leads the active segment of any topic, N is asked to hand them off (seal them, so the
 *    next segments open on other voters); if it cannot be reached, the active segments it leads are
 *    recovered without it (fenced and sealed at their quorum's end);
 * 3. N's copies are moved (controller.drainReplicas): the active segments it follows roll over,
 *    and each sealed segment it holds is copied to another voter before the metadata lists that
 *    one instead. A segment with no voter to copy to keeps its other copies (under-replicated);
 * 4. if N holds the only copy of records of a sealed segment (replication factor 1) the removal is
 *    refused (CONFLICT): the records would be lost. Delete those topics, or let retention drop the
 *    segments, first.
 * Then the configuration change runs. The Raft leader does not remove itself: it hands its
 * leadership to another voter, which runs all of the above.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { type MetadataState, activeSegment, replicasOf } from '../metadata/metadata-state.js';
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
  if (nodeId === self && cluster.voters().length > 1) {
    // The Raft leader is asked to remove itself: another voter leads the whole removal (its
    // controller then knows the node is leaving while it moves the node's segments, and it makes
    // the configuration change, which a leader removing itself cannot see through: defect J).
    const leader = await cluster.handLeadershipAway();
    return cluster.forward<'removeNode'>(leader, { op: 'removeNode', nodeId });
  }
  refuseIfHolding(state, nodeId);
  controller.markLeaving(nodeId);
  try {
    if (leadsActive(state, nodeId).length > 0) {
      try {
        if (nodeId === self) await topics.appender.handOff(nodeId);
        else await cluster.forward<'handOff'>(nodeId, { op: 'handOff', nodeId });
        await cluster.catchUpWithLeader();
      } catch {
        // N cannot hand off: its active segments are recovered without it.
        for (const name of leadsActive(state, nodeId)) {
          const topic = state.topics.get(name);
          if (topic !== undefined)
            await topics.recoverSegment(name, activeSegment(topic).id, `node ${nodeId} is being removed`);
        }
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
    const unmoved = await controller.drainReplicas(nodeId);
    // An active segment that still has a copy on N would lose a quorum member for good.
    const stuck = [...state.topics.values()]
      .filter((topic) => replicasOf(activeSegment(topic)).includes(nodeId))
      .map((topic) => topic.name);
    if (stuck.length > 0) {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `the active segment of ${describe(stuck)} still has a copy on node ${nodeId} and could not be moved (a majority of its replicas must answer); retry the removal`,
      );
    }
    if (unmoved.length > 0)
      topics.logger.warn(
        {
          node: nodeId,
          segments: unmoved.slice(0, nodeRemovalLimits.topicNamesInMessageMax),
          count: unmoved.length,
        },
        'Removing a node whose copies could not all be moved: those segments stay under-replicated',
      );
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

/** Topics with a sealed, non-empty segment whose only copy is on `nodeId`. */
function holdsRecords(state: MetadataState, nodeId: number): string[] {
  const names: string[] = [];
  for (const topic of state.topics.values()) {
    if (
      topic.segments.some((s) => {
        const replicas = replicasOf(s);
        return (
          s.endOffset !== null &&
          s.endOffset > s.baseOffset &&
          replicas.length === 1 &&
          replicas[0] === nodeId
        );
      })
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
