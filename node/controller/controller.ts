/**
 * The controller: work that only the Raft leader does, because only it has one view of the
 * cluster that every node then follows through the log:
 * - retention: which leading sealed segments of each topic expire (retention.ts), proposed as one
 *   `dropSegments` per topic; every node deletes its files when it applies the drop;
 * - placement at a seal: the next segment leader is re-chosen from the leader's liveness view (a
 *   follower that sealed its segment cannot tell a dead voter from a quiet one);
 * - a node being removed (the metadata's leaving mark, set by server/node-removal.ts) gets nothing
 *   new and its copies are repaired elsewhere: read from the applied state, so every Raft leader
 *   knows, not only the one that started the removal; a removal nobody runs any more (its leader
 *   died or lost its leadership) is resumed through `resumeRemovals`.
 * The monitor loop (monitor.ts) calls `tick` on every node; it does nothing on a follower.
 */
import type { Logger } from '../log.js';
import {
  type MetaCommand,
  type MetadataState,
  type SegmentMeta,
  type TopicMeta,
  activeSegment,
  replicasOf,
} from '../metadata/metadata-state.js';
import {
  nextSegmentLeader,
  placeNewTopic,
  placeReplicas,
  repairTarget,
  replicationFactorDefault,
} from '../metadata/placement.js';
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
  /** Re-replicates a sealed segment: `target` copies it, then replaces `gone` in its replica set. */
  repairSegment(topic: string, segmentId: number, gone: number, target: number): Promise<boolean>;
  /** Makes `target` hold a whole copy of a sealed segment it is listed for. */
  ensureCopy(topic: string, segmentId: number, target: number): Promise<boolean>;
  /** Resolves after `ms` on the node's clock (the simulator's in the simulator). */
  delay(ms: number): Promise<void>;
  /** A replica dead this long is replaced (WALRUS_REPAIR_AFTER_MS). */
  readonly repairAfterMs: number;
  nowMs(): number;
  readonly logger: Logger;
}

export const controllerLimits = {
  /** How often the Raft leader looks for segments whose leader is gone. */
  segmentWatchIntervalMs: 200,
  /** Re-replications the Raft leader runs at once. */
  repairCountMax: 2,
  /** Rounds of rolling a leaving node's active segment over before the removal gives up (and between them). */
  drainAttemptCountMax: 20,
  drainRetryMs: 100,
  /**
   * A segment leader not heard from for this long is taken for dead (the Raft view of "alive" is
   * one election timeout; this adds margin against a pause).
   */
  segmentLeaderDeadAfterMs: 1_000,
  /** Longest a shutting-down node (nodeStopping) is passed over by placement while still alive. */
  stoppingMarkMsMax: 60_000,
} as const;

export class Controller {
  private readonly ports: ControllerPorts;
  /** Runs a removal the metadata marks and nobody runs here (node-removal.ts attaches it). */
  private removalDriver: ((nodeId: number) => void) | null = null;
  /**
   * Nodes shutting down (SIGTERM): no new topic or next segment is placed on them, until they are
   * seen down (alive again later: placed as before) or the mark lapses (value: when, node clock).
   * Unlike `leaving`, their copies stay where they are: they come back.
   */
  private readonly stopping = new Map<number, number>();
  /** Repairs running (topic/segment keys), bounded by controllerLimits.repairCountMax. */
  private readonly repairing = new Set<string>();
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

  /**
   * The node being removed (the metadata's leaving mark, server/node-removal.ts): it gets no new
   * topic and no next segment, and its copies are moved. Read on every call: the mark is applied
   * state, the same on every Raft leader.
   */
  private leaving(): ReadonlySet<number> {
    const mark = this.ports.state.leaving;
    return mark === null ? new Set() : new Set([mark.nodeId]);
  }

  /** Commits a metadata command (for the removal, which the controller's placement serves). */
  propose(command: MetaCommand): Promise<number> {
    return this.ports.propose(command);
  }

  /** The node's clock (the simulator's in the simulator): a proposer puts times in its commands. */
  nowMs(): number {
    return this.ports.nowMs();
  }

  /** Who resumes a marked removal on this node when it leads Raft (server/node-removal.ts). */
  attachRemovals(driver: (nodeId: number) => void): void {
    this.removalDriver = driver;
  }

  /**
   * On the Raft leader: a removal the metadata marks is run here if it is not already (the driver
   * joins one under way), so a removal whose leader died or lost its leadership is finished by the
   * next one, not left half-done with its node passed over for ever.
   */
  resumeRemovals(): void {
    const mark = this.ports.state.leaving;
    if (mark === null || this.removalDriver === null || !this.ports.isRaftLeader()) return;
    this.removalDriver(mark.nodeId);
  }

  /** Node `nodeId` is shutting down: placement passes it over (see `stopping`). */
  markStopping(nodeId: number): void {
    this.stopping.set(nodeId, this.ports.nowMs() + controllerLimits.stoppingMarkMsMax);
  }

  /** Stopping nodes still up (a mark ends once its node is seen down, or lapses). */
  private stoppingNodes(): ReadonlySet<number> {
    if (this.stopping.size === 0) return new Set();
    const alive = new Set(this.ports.aliveVoters());
    const nowMs = this.ports.nowMs();
    for (const [id, untilMs] of this.stopping)
      if (!alive.has(id) || nowMs > untilMs) this.stopping.delete(id);
    return new Set(this.stopping.keys());
  }

  /** Run on the Raft leader before it proposes a command (see the file header). */
  prepareProposal(command: MetaCommand): MetaCommand {
    const p = this.ports;
    const leaving = this.leaving();
    const voters = p.voters().filter((v) => !leaving.has(v));
    const alive = p.aliveVoters().filter((v) => !leaving.has(v));
    // A stopping node may still hold copies (it comes back), but leads nothing new.
    const stopping = this.stoppingNodes();
    const leaders = alive.filter((v) => !stopping.has(v));
    const leaderVoters = voters.filter((v) => !stopping.has(v));
    if (command.type === 'createTopic') {
      const passedOver = leaving.has(command.leaderNodeId) || stopping.has(command.leaderNodeId);
      const leaderNodeId =
        !passedOver || leaderVoters.length === 0
          ? command.leaderNodeId
          : placeNewTopic(command.name, leaders.length > 0 ? leaders : leaderVoters, p.nodeId);
      const replicas = placeReplicas(leaderNodeId, voters, alive, command.replicationFactor ?? null);
      return { ...command, leaderNodeId, replicas };
    }
    if (command.type !== 'sealSegment') return command;
    const topic = p.state.topics.get(command.topic);
    const active = topic === undefined ? undefined : activeSegment(topic);
    if (topic === undefined || active === undefined || active.id !== command.segmentId) return command;
    // A recovery passes over the dead leader: it is not alive, so it is not chosen.
    const next =
      leaderVoters.length > 0
        ? nextSegmentLeader(active.leaderNodeId, leaderVoters, leaders, p.nodeId)
        : nextSegmentLeader(active.leaderNodeId, voters, alive, p.nodeId);
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
    this.scheduleRepairs(nowMs, voters);
    this.resumeRemovals();
  }

  /** A replica that is not a voter, is leaving, or has been silent for repairAfterMs. */
  private isGone(
    id: number,
    voters: ReadonlySet<number>,
    nowMs: number,
    leaving: ReadonlySet<number>,
  ): boolean {
    if (!voters.has(id) || leaving.has(id)) return true;
    const heardMs = this.lastHeardMs.get(id) ?? this.leaderSinceMs ?? nowMs;
    return nowMs - heardMs >= this.ports.repairAfterMs;
  }

  /**
   * Repair, on the Raft leader: an active segment with a gone follower is rolled over (its next
   * segment gets a whole replica set); a sealed segment with a gone replica is copied to another
   * voter, at most repairCountMax at once. A segment with no voter to copy to stays under-replicated.
   */
  private scheduleRepairs(nowMs: number, voters: ReadonlySet<number>): void {
    const p = this.ports;
    const alive = p.aliveVoters();
    const leaving = this.leaving();
    for (const topic of p.state.topics.values()) {
      for (const segment of topic.segments) {
        if (this.repairing.size >= controllerLimits.repairCountMax) return;
        const gone = replicasOf(segment).filter((id) => this.isGone(id, voters, nowMs, leaving));
        // The only copy of records on a node being removed is the removal's to decide (it refuses:
        // server/node-removal.ts); moved from under it, the refusal came or not by timing.
        if (soleCopyOfRecords(segment) && leaving.has(replicasOf(segment)[0]!)) continue;
        if (gone.length === 0) {
          // A sealed segment with fewer copies than its topic asks for (a copy dropped when its node
          // left with nowhere to move it) gets one on a voter that joined since.
          // An active one (opened while too few voters were up) rolls over so the next gets them.
          const wanted = Math.min(topic.replicationFactor ?? replicationFactorDefault, voters.size);
          if (replicasOf(segment).length >= wanted) continue;
          const target = repairTarget(0, replicasOf(segment), [...voters], alive, leaving);
          if (target === null) continue;
          if (segment.endOffset === null)
            this.track(topic, segment, () =>
              p.recoverSegment(topic.name, segment.id, `fewer copies than replication factor ${wanted}`),
            );
          else this.track(topic, segment, () => p.repairSegment(topic.name, segment.id, 0, target));
          continue;
        }
        if (segment.endOffset === null) {
          if (!gone.includes(segment.leaderNodeId))
            this.track(topic, segment, () =>
              p.recoverSegment(topic.name, segment.id, `replica ${gone[0]} is gone`),
            );
          continue;
        }
        const target = repairTarget(gone[0]!, replicasOf(segment), [...voters], alive, leaving);
        if (target !== null)
          this.track(topic, segment, () => p.repairSegment(topic.name, segment.id, gone[0]!, target));
      }
    }
  }

  private track(topic: TopicMeta, segment: SegmentMeta, work: () => Promise<boolean>): void {
    const key = `${topic.name}/${segment.id}`;
    if (this.repairing.has(key)) return;
    this.repairing.add(key);
    work()
      .catch((error: unknown) => {
        this.ports.logger.warn(
          { topic: topic.name, segment: segment.id, err: String(error) },
          'Repair did not complete; will retry',
        );
      })
      .finally(() => this.repairing.delete(key));
  }

  /**
   * Before `nodeId` leaves (remove-node): the active segments it follows are rolled over and its
   * copies of sealed segments are made on other voters, one after the other. Resolves with the
   * sealed segments that could not be moved (no voter to copy to, or a copy failed).
   */
  async drainReplicas(nodeId: number): Promise<string[]> {
    const p = this.ports;
    const unmoved: string[] = [];
    for (const topic of [...p.state.topics.values()]) {
      // The active segment is rolled over until its replica set no longer holds the node (a
      // recovery may be throttled or fail for a moment: retried, bounded).
      for (let attempt = 0; attempt < controllerLimits.drainAttemptCountMax; attempt++) {
        const current = p.state.topics.get(topic.name);
        if (current === undefined) break;
        const active = activeSegment(current);
        if (!replicasOf(active).includes(nodeId)) break;
        if (!(await p.recoverSegment(topic.name, active.id, `replica ${nodeId} is leaving`)))
          await p.delay(controllerLimits.drainRetryMs);
      }
      for (const segment of [...topic.segments]) {
        if (segment.endOffset === null || !replicasOf(segment).includes(nodeId)) continue;
        const target = repairTarget(nodeId, replicasOf(segment), p.voters(), p.aliveVoters(), this.leaving());
        let moved = false;
        if (target !== null) {
          try {
            moved = await p.repairSegment(topic.name, segment.id, nodeId, target);
          } catch (error) {
            p.logger.warn(
              { topic: topic.name, segment: segment.id, err: String(error) },
              'could not move a copy off a leaving node',
            );
          }
        }
        if (!moved) {
          // Nowhere to move it: the copy is dropped from the set, so the node (or a wiped node
          // rejoining under its id) is never taken for a holder of it; repair adds one later.
          const remaining = replicasOf(segment).filter((id) => id !== nodeId);
          // Only once every replica staying holds a whole copy (one that was down while the
          // segment was written holds none yet): the set never lists fewer real copies than a quorum.
          let covered = remaining.length > 0;
          for (const id of remaining) {
            if (!covered) break;
            covered = await p.ensureCopy(topic.name, segment.id, id).catch(() => false);
          }
          if (covered && target === null)
            await p
              .propose({
                type: 'setReplicas',
                topic: topic.name,
                segmentId: segment.id,
                replicas: remaining,
                expected: [...replicasOf(segment)],
              })
              .catch(() => {});
          unmoved.push(`${topic.name}/${segment.id}`);
        }
      }
    }
    return unmoved;
  }
}

/** A sealed segment holding records whose replica set is one node (replication factor 1). */
function soleCopyOfRecords(segment: SegmentMeta): boolean {
  return (
    segment.endOffset !== null && segment.endOffset > segment.baseOffset && replicasOf(segment).length === 1
  );
}
