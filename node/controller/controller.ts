/**
 * The controller: work that only the Raft leader does, because only it has one view of the
 * cluster that every node then follows through the log:
 * - retention: which leading sealed segments of each topic expire (retention.ts), proposed as one
 *   `dropSegments` per topic; every node deletes its files when it applies the drop;
 * - placement at a seal: the next segment leader is re-chosen from the leader's liveness view (a
 *   follower that sealed its segment cannot tell a dead voter from a quiet one).
 * The monitor loop (monitor.ts) calls `tick` on every node; it does nothing on a follower.
 */
import type { Logger } from '../log.js';
import { type MetaCommand, type MetadataState, activeSegment } from '../metadata/metadata-state.js';
import { nextSegmentLeader, placeNewTopic, placeReplicas } from '../metadata/placement.js';
import { expiredSegments } from './retention.js';

/** What the controller needs of the node: the metadata log and the Raft leader's liveness view. */
export interface ControllerPorts {
  readonly nodeId: number;
  readonly state: MetadataState;
  isRaftLeader(): boolean;
  voters(): number[];
  aliveVoters(): number[];
  propose(command: MetaCommand): Promise<number>;
  /** Recovers a topic's active segment (topics/segment-recovery.ts); throttled by the topic service. */
  recoverSegment(topic: string, segmentId: number, reason: string): Promise<boolean>;
  nowMs(): number;
  readonly logger: Logger;
}

export const controllerLimits = {
  /** How often the Raft leader looks for segments whose leader is gone. */
  segmentWatchIntervalMs: 200,
  /**
   * A segment leader not heard from for this long is taken for dead (the Raft view of "alive" is
   * one election timeout; this adds margin against a pause).
   */
  segmentLeaderDeadAfterMs: 1_000,
} as const;

export class Controller {
  private readonly ports: ControllerPorts;
  /** Nodes being removed: they get no new topic and no next segment. */
  private readonly leaving = new Set<number>();
  /** When this node became Raft leader (null: it is not), and when it last heard from each voter. */
  private leaderSinceMs: number | null = null;
  private readonly lastHeardMs = new Map<number, number>();

  constructor(ports: ControllerPorts) {
    this.ports = ports;
  }

  /** One round of leader-only work; a follower does nothing. */
  async tick(): Promise<void> {
    const p = this.ports;
    if (!p.isRaftLeader()) return;
    for (const topic of [...p.state.topics.values()]) {
      const expired = expiredSegments(topic, p.nowMs());
      if (expired.length === 0) continue;
      try {
        await p.propose({ type: 'dropSegments', topic: topic.name, segmentIds: expired });
        p.logger.info({ topic: topic.name, segments: expired }, 'Retention dropped sealed segments');
      } catch (error) {
        p.logger.warn({ topic: topic.name, err: String(error) }, 'Retention could not drop segments');
      }
      if (!p.isRaftLeader()) return;
    }
  }

  /** While a node is being removed, placement passes it over (see server/node-removal.ts). */
  markLeaving(nodeId: number): void {
    this.leaving.add(nodeId);
  }

  unmarkLeaving(nodeId: number): void {
    this.leaving.delete(nodeId);
  }

  /** Run on the Raft leader before it proposes a command (see the file header). */
  prepareProposal(command: MetaCommand): MetaCommand {
    const p = this.ports;
    const voters = p.voters().filter((v) => !this.leaving.has(v));
    const alive = p.aliveVoters().filter((v) => !this.leaving.has(v));
    if (command.type === 'createTopic') {
      const leaderNodeId =
        !this.leaving.has(command.leaderNodeId) || voters.length === 0
          ? command.leaderNodeId
          : placeNewTopic(command.name, alive.length > 0 ? alive : voters, p.nodeId);
      const replicas = placeReplicas(leaderNodeId, voters, alive, command.replicationFactor ?? null);
      return { ...command, leaderNodeId, replicas };
    }
    if (command.type !== 'sealSegment') return command;
    const topic = p.state.topics.get(command.topic);
    const active = topic === undefined ? undefined : activeSegment(topic);
    if (topic === undefined || active === undefined || active.id !== command.segmentId) return command;
    // A recovery passes over the dead leader: it is not alive, so it is not chosen.
    const next = nextSegmentLeader(active.leaderNodeId, voters, alive, p.nodeId);
    const nextReplicas = placeReplicas(next, voters, alive, topic.replicationFactor);
    return { ...command, nextLeaderNodeId: next, nextReplicas };
  }

  /**
   * Failover, every segmentWatchIntervalMs on the Raft leader: the active segments whose leader is
   * not a voter any more, or has not been heard from for segmentLeaderDeadAfterMs, are recovered
   * (fenced, sealed at the quorum's end, and the next segment opened on a live node).
   */
  watchSegments(): void {
    const p = this.ports;
    if (!p.isRaftLeader()) {
      this.leaderSinceMs = null;
      this.lastHeardMs.clear();
      return;
    }
    const nowMs = p.nowMs();
    this.leaderSinceMs ??= nowMs;
    const voters = new Set(p.voters());
    for (const id of p.aliveVoters()) this.lastHeardMs.set(id, nowMs);
    for (const topic of p.state.topics.values()) {
      const active = activeSegment(topic);
      const leader = active.leaderNodeId;
      const heardMs = this.lastHeardMs.get(leader) ?? this.leaderSinceMs;
      const gone = !voters.has(leader);
      if (!gone && nowMs - heardMs < controllerLimits.segmentLeaderDeadAfterMs) continue;
      void p.recoverSegment(
        topic.name,
        active.id,
        gone ? `leader ${leader} is not a voter` : `leader ${leader} is not heard from`,
      );
    }
  }
}
