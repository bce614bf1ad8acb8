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
import { nextSegmentLeader, placeNewTopic } from '../metadata/placement.js';
import { expiredSegments } from './retention.js';

/** What the controller needs of the node: the metadata log and the Raft leader's liveness view. */
export interface ControllerPorts {
  readonly nodeId: number;
  readonly state: MetadataState;
  isRaftLeader(): boolean;
  voters(): number[];
  aliveVoters(): number[];
  propose(command: MetaCommand): Promise<number>;
  nowMs(): number;
  readonly logger: Logger;
}

export class Controller {
  private readonly ports: ControllerPorts;
  /** Nodes being removed: they get no new topic and no next segment. */
  private readonly leaving = new Set<number>();

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
      if (!this.leaving.has(command.leaderNodeId) || voters.length === 0) return command;
      return {
        ...command,
        leaderNodeId: placeNewTopic(command.name, alive.length > 0 ? alive : voters, p.nodeId),
      };
    }
    if (command.type !== 'sealSegment') return command;
    const topic = p.state.topics.get(command.topic);
    const active = topic === undefined ? undefined : activeSegment(topic);
    if (active === undefined || active.id !== command.segmentId) return command;
    const next = nextSegmentLeader(active.leaderNodeId, voters, alive, p.nodeId);
    return next === command.nextLeaderNodeId ? command : { ...command, nextLeaderNodeId: next };
  }
}
