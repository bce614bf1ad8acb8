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
import { type MetaCommand, type MetadataState, activeSegment } from '../cluster/metadata-state.js';
import { nextSegmentLeader } from '../metadata/placement.js';
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

  /** Run on the Raft leader before it proposes a command (see the file header). */
  prepareProposal(command: MetaCommand): MetaCommand {
    if (command.type !== 'sealSegment') return command;
    const p = this.ports;
    const topic = p.state.topics.get(command.topic);
    const active = topic === undefined ? undefined : activeSegment(topic);
    if (active === undefined || active.id !== command.segmentId) return command;
    const next = nextSegmentLeader(active.leaderNodeId, p.voters(), p.aliveVoters(), p.nodeId);
    return next === command.nextLeaderNodeId ? command : { ...command, nextLeaderNodeId: next };
  }
}
