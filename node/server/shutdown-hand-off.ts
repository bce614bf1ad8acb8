/**
 * What a node does on SIGTERM before it stops serving, so that nothing it leads waits for a
 * failover once it is gone:
 * 1. if it leads Raft, it hands the leadership to the voter with the longest log;
 * 2. it tells the Raft leader it is stopping (nodeStopping): placement passes it over while it is
 *    still up, so no rollover elsewhere makes it the leader of a next segment;
 * 3. it seals the active segments it leads (the appender's hand-off, as for a removal): their next
 *    segments open on other voters, and the writers follow the NOT_LEADER hints there.
 * Each step is bounded by `shutdownLimits.handOffMs` in all; a step that fails is logged and the
 * shutdown goes on (what it would have handed over is then recovered by the controller's
 * failover, as after a crash). A single-voter cluster has nobody to hand anything to.
 */
import type { Logger } from '../log.js';
import type { ClusterView } from '../topics/ports.js';
import type { TopicService } from '../topics/topic-service.js';

export const shutdownLimits = {
  /** Time for the whole hand-off (Raft leadership, the stopping mark, the segments). */
  handOffMs: 15_000,
  /** Time in-flight client requests get to finish once the node stops taking new ones. */
  drainMs: 10_000,
  /** How often the drain looks at what is still in flight. */
  drainPollMs: 20,
  /**
   * Connections are closed once nothing is in flight AND no client has sent anything for this
   * long: a request that crosses the close would end with its outcome unknown, while one that
   * arrives before it is answered UNAVAILABLE (not applied) and goes to another node.
   */
  drainQuietMs: 300,
} as const;

export interface ShutdownPorts {
  readonly nodeId: number;
  readonly cluster: ClusterView;
  readonly topics: TopicService;
  readonly isRaftLeader: () => boolean;
  readonly logger: Logger;
}

/** Resolves with what was handed off; never rejects. */
export async function handOffForShutdown(
  p: ShutdownPorts,
): Promise<{ raftLeaderTo: number | null; segments: number; completed: boolean }> {
  const result = { raftLeaderTo: null as number | null, segments: 0, completed: false };
  if (p.cluster.voters().filter((v) => v !== p.nodeId).length === 0) return result;
  const work = (async () => {
    if (p.isRaftLeader()) {
      result.raftLeaderTo = await p.cluster.handLeadershipAway();
      p.logger.info({ to: result.raftLeaderTo }, 'Shutdown: handed Raft leadership over');
    }
    const leader = p.cluster.raftLeaderId();
    if (leader !== 0 && leader !== p.nodeId)
      await p.cluster.forward<'nodeStopping'>(leader, { op: 'nodeStopping', nodeId: p.nodeId });
    result.segments = await p.topics.appender.handOff(p.nodeId);
    await p.cluster.catchUpWithLeader().catch(() => {});
    result.completed = true;
  })();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, shutdownLimits.handOffMs);
  });
  try {
    await Promise.race([work, limit]);
  } catch (error) {
    p.logger.warn({ err: String(error) }, 'Shutdown: hand-off failed; failover takes over what is left');
  } finally {
    clearTimeout(timer);
  }
  work.catch(() => {});
  if (!result.completed && timer !== undefined)
    p.logger.warn({ limitMs: shutdownLimits.handOffMs }, 'Shutdown: hand-off incomplete; stopping anyway');
  return result;
}
