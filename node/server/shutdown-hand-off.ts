/**
 * What a node does on SIGTERM before it stops serving, so that nothing it leads waits for a
 * failover once it is gone:
 * 1. if it leads Raft, it hands the leadership to the voter with the longest log;
 * 2. it tells the Raft leader it is stopping (nodeStopping): placement passes it over while it is
 *    still up, so no rollover elsewhere makes it the leader of a next segment;
 * 3. it seals the active segments it leads (the appender's hand-off, as for a removal): their next
 *    segments open on other voters, and the writers follow the NOT_LEADER hints there.
 * The steps are bounded by `shutdownLimits.handOffMs` in all, and end as soon as no other voter
 * can be reached (the whole cluster is stopping: nobody is left to hand anything to). A step that
 * fails is logged and the shutdown goes on; what it would have handed over is then recovered by
 * the controller's failover, as after a crash. A single-voter cluster has nobody to hand to.
 */
import type { Logger } from '../log.js';
import type { ClusterView } from '../topics/ports.js';
import type { TopicService } from '../topics/topic-service.js';

export const shutdownLimits = {
  /** Time for the whole hand-off (Raft leadership, the stopping mark, the segments). */
  handOffMs: 15_000,
  /** Time in-flight client requests get to finish once the node stops taking new ones. */
  drainMs: 10_000,
  /** How often the hand-off looks whether any other voter is still reachable. */
  peerCheckMs: 50,
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
  // Ends the wait at the time limit, or once no other voter can be reached.
  let check: NodeJS.Timeout | undefined;
  const untilMs = Date.now() + shutdownLimits.handOffMs;
  const cutOff = new Promise<string>((resolve) => {
    const look = (): void => {
      const others = p.cluster.voters().filter((v) => v !== p.nodeId);
      if (Date.now() >= untilMs) resolve(`the time limit of ${shutdownLimits.handOffMs} ms passed`);
      else if (others.every((v) => !p.cluster.reachable(v))) resolve('no other voter can be reached');
      else check = setTimeout(look, shutdownLimits.peerCheckMs);
    };
    check = setTimeout(look, shutdownLimits.peerCheckMs);
  });
  try {
    const cut = await Promise.race([work.then(() => null), cutOff]);
    if (cut !== null) p.logger.warn({ why: cut }, 'Shutdown: hand-off incomplete; stopping anyway');
  } catch (error) {
    p.logger.warn({ err: String(error) }, 'Shutdown: hand-off failed; failover takes over what is left');
  } finally {
    clearTimeout(check);
  }
  work.catch(() => {});
  return result;
}
