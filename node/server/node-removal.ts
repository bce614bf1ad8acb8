/**
 * `remove-node N` on the Raft leader. A removal must not strand a topic or lose a copy:
 * 1. N is marked leaving in the metadata (`markLeaving`): every Raft leader's controller then
 *    gives N no new topic or segment and repairs its copies elsewhere. One removal at a time: while
 *    the mark names another node, a removal is refused UNAVAILABLE (retryable), naming that node;
 * 2. if N leads the active segment of any topic, N is asked to hand them off (seal them, so the
 *    next segments open on other voters); if it cannot be reached, the active segments it leads are
 *    recovered without it (fenced and sealed at their quorum's end);
 * 3. N's copies are moved (controller.drainReplicas): the active segments it follows roll over,
 *    and each sealed segment it holds is copied to another voter before the metadata lists that
 *    one instead. A segment with no voter to copy to keeps its other copies (under-replicated);
 * 4. if N holds the only copy of records of a sealed segment (replication factor 1) the removal is
 *    refused (CONFLICT): the records would be lost. Delete those topics, or let retention drop the
 *    segments, first.
 * Then the configuration change runs, and `unregisterNode` ends the mark. A removal that fails
 * clears its mark (`clearLeaving`: N is placed again) and says why. The Raft leader does not remove
 * itself: it hands its leadership to another voter, which runs all of the above.
 *
 * The mark outlives the leader that set it: a new Raft leader that finds a mark nobody runs on it
 * resumes the removal (Controller.resumeRemovals → `resume`), taking the mark over, so a removal
 * ends either with N gone or with the mark cleared, never half-done. A client's retry of the same
 * removal joins or resumes it.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { type MetadataState, activeSegment, replicasOf } from '../metadata/metadata-state.js';
import type { Controller } from '../controller/controller.js';
import type { ClusterView } from '../topics/ports.js';
import type { TopicService } from '../topics/topic-service.js';

export const nodeRemovalLimits = {
  /** Topics named in a refusal message (the count is always given). */
  topicNamesInMessageMax: 10,
  /** Least time between two resumptions of a marked removal by one leader (a failing one is not retried in a loop). */
  resumeIntervalMs: 1_000,
} as const;

export interface NodeRemovalDeps {
  readonly self: number;
  readonly topics: TopicService;
  readonly controller: Controller;
  readonly cluster: ClusterView;
}

/** The removals this node runs (at most one) and the resumption of a marked one. */
export class NodeRemovals {
  private readonly d: NodeRemovalDeps;
  private running: { readonly nodeId: number; readonly done: Promise<{ removed: boolean }> } | null = null;
  private lastResumedMs = Number.NEGATIVE_INFINITY;

  constructor(deps: NodeRemovalDeps) {
    this.d = deps;
    deps.controller.attachRemovals((nodeId) => this.resume(nodeId));
  }

  /** `remove-node N` from an operator: joins the removal of N under way here, or starts (or resumes) it. */
  remove(nodeId: number): Promise<{ removed: boolean }> {
    const running = this.running;
    if (running !== null) {
      if (running.nodeId === nodeId) return running.done;
      return Promise.reject(busyWith(running.nodeId, nodeId));
    }
    const done = this.run(nodeId).finally(() => {
      if (this.running?.done === done) this.running = null;
    });
    this.running = { nodeId, done };
    return done;
  }

  /** The controller found node N marked leaving while this node leads Raft: the removal goes on here. */
  private resume(nodeId: number): void {
    if (this.running !== null) return;
    const nowMs = this.d.controller.nowMs();
    if (nowMs - this.lastResumedMs < nodeRemovalLimits.resumeIntervalMs) return;
    this.lastResumedMs = nowMs;
    const logger = this.d.topics.logger;
    logger.info(
      { node: nodeId, by: this.d.topics.metadata.leaving?.byNodeId },
      'Resuming the removal of a node marked leaving (its Raft leader changed or its run ended)',
    );
    this.remove(nodeId).then(
      ({ removed }) => logger.info({ node: nodeId, removed }, 'Resumed removal done'),
      (error: unknown) =>
        logger.warn({ node: nodeId, err: String(error) }, 'Resumed removal did not complete'),
    );
  }

  private async run(nodeId: number): Promise<{ removed: boolean }> {
    const { self, topics, controller, cluster } = this.d;
    const state = topics.metadata;
    const mark = state.leaving;
    if (mark !== null && mark.nodeId !== nodeId) throw busyWith(mark.nodeId, nodeId);
    if (!state.nodes.has(nodeId) && !cluster.voters().includes(nodeId)) {
      // Not a member (any more): a marked removal whose configuration change is done only lacks
      // its unregisterNode, which ends the mark.
      if (mark === null) return { removed: await cluster.removeNode(nodeId) };
      await cluster.removeNode(nodeId);
      await controller.propose({ type: 'unregisterNode', nodeId });
      return { removed: true };
    }
    if (nodeId === self && cluster.voters().length > 1) {
      // The Raft leader is asked to remove itself: another voter leads the whole removal (it marks
      // the node and makes the configuration change, which a leader removing itself cannot see
      // through: defect J).
      const leader = await cluster.handLeadershipAway();
      return cluster.forward<'removeNode'>(leader, { op: 'removeNode', nodeId });
    }
    if (cluster.raftLeaderId() !== self)
      throw new WalrusError(ErrorCode.NOT_LEADER, `node ${self} is not the Raft leader; ask the leader`);
    if (mark === null) refuseIfHolding(state, nodeId);
    await controller.propose({ type: 'markLeaving', nodeId, byNodeId: self, atMs: controller.nowMs() });
    this.ensureOwned(nodeId);
    try {
      return await this.drainAndRemove(nodeId);
    } catch (error) {
      if (this.owns(nodeId)) {
        await controller.propose({ type: 'clearLeaving', nodeId, byNodeId: self }).catch((e: unknown) => {
          topics.logger.warn({ node: nodeId, err: String(e) }, 'could not clear the leaving mark');
        });
      }
      throw error;
    }
  }

  /** Steps 2-4 of the header, then the configuration change. */
  private async drainAndRemove(nodeId: number): Promise<{ removed: boolean }> {
    const { self, topics, controller, cluster } = this.d;
    const state = topics.metadata;
    refuseIfHolding(state, nodeId);
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
    this.ensureOwned(nodeId);
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
    this.ensureOwned(nodeId);
    // The configuration change; the unregisterNode that follows it ends the mark. Not a voter or
    // learner any more (a run before this one made the change): only the unregisterNode is left.
    if (!(await cluster.removeNode(nodeId))) await controller.propose({ type: 'unregisterNode', nodeId });
    return { removed: true };
  }

  /** Whether this node leads Raft and runs the removal of `nodeId` as the metadata says. */
  private owns(nodeId: number): boolean {
    const mark = this.d.topics.metadata.leaving;
    return (
      this.d.cluster.raftLeaderId() === this.d.self &&
      mark?.nodeId === nodeId &&
      mark.byNodeId === this.d.self
    );
  }

  /**
   * Between steps: a removal whose leader lost the Raft leadership (or whose mark another leader
   * took over, or another removal holds) stops here, without clearing the mark, and the leader that
   * has it goes on (it resumes marked removals); the caller is told to retry, which follows it there.
   */
  private ensureOwned(nodeId: number): void {
    if (this.owns(nodeId)) return;
    const mark = this.d.topics.metadata.leaving;
    if (mark !== null && mark.nodeId !== nodeId) throw busyWith(mark.nodeId, nodeId);
    const leader = this.d.cluster.raftLeaderId();
    throw new WalrusError(
      ErrorCode.UNAVAILABLE,
      `the removal of node ${nodeId} moved to ${leader === 0 ? 'the next Raft leader' : `node ${leader}, the Raft leader`}, which goes on with it; retry to follow it there`,
    );
  }
}

/** UNAVAILABLE (retryable): removals run one at a time. */
function busyWith(leaving: number, asked: number): WalrusError {
  return new WalrusError(
    ErrorCode.UNAVAILABLE,
    `node ${leaving} is being removed; the removal of node ${asked} can start once node ${leaving} has left (removals run one at a time); retry`,
  );
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
