/**
 * Routing state of the client: which node to try first, and a metadata cache of topic → address of
 * the node that last led it (learnt from NOT_LEADER leader hints). Kept apart from the client so
 * that the multi-node cluster work can extend it (segment leaders, cluster metadata refresh)
 * without touching retries or connections.
 *
 * Bounded: at most `topicCountMax` cached topics; the least recently used is forgotten first.
 */
import assert from 'node:assert';
import { type NodeAddress, parseNodeAddress } from './node-address.js';

export const leaderCacheDefaults = {
  /** Topics whose leader address is remembered. */
  topicCountMax: 10_000,
} as const;

export class LeaderCache {
  /** The configured nodes, in the order given. */
  readonly nodes: readonly NodeAddress[];
  private preferredIndex = 0;
  private readonly leaderByTopic = new Map<string, NodeAddress>();
  private readonly topicCountMax: number;

  constructor(nodes: readonly string[], topicCountMax: number = leaderCacheDefaults.topicCountMax) {
    assert(topicCountMax > 0);
    this.nodes = nodes.map(parseNodeAddress);
    this.topicCountMax = topicCountMax;
  }

  /** The node to try for a request about `topic` (or for a request without a topic). */
  route(topic: string | undefined): NodeAddress {
    if (topic !== undefined) {
      const leader = this.leaderByTopic.get(topic);
      if (leader !== undefined) {
        this.leaderByTopic.delete(topic);
        this.leaderByTopic.set(topic, leader);
        return leader;
      }
    }
    return this.preferred();
  }

  preferred(): NodeAddress {
    const node = this.nodes[this.preferredIndex % this.nodes.length];
    assert(node !== undefined, 'a client needs at least one node');
    return node;
  }

  /** A NOT_LEADER reply named the leader: send this topic there from now on. */
  learnLeader(topic: string | undefined, clientAddr: string): NodeAddress {
    const addr = parseNodeAddress(clientAddr);
    if (topic === undefined) return addr;
    this.leaderByTopic.delete(topic);
    this.leaderByTopic.set(topic, addr);
    if (this.leaderByTopic.size > this.topicCountMax) {
      const oldest = this.leaderByTopic.keys().next().value;
      if (oldest !== undefined) this.leaderByTopic.delete(oldest);
    }
    return addr;
  }

  /** The cached leader is wrong (NOT_LEADER without hint) or unknown: forget it. */
  forgetLeader(topic: string | undefined): void {
    if (topic !== undefined) this.leaderByTopic.delete(topic);
  }

  /** `addr` failed (connection failure, UNAVAILABLE): move on to the next configured node and forget topics cached on it. */
  markFailed(addr: NodeAddress): void {
    const current = this.preferred();
    if (current.key === addr.key) this.preferredIndex = (this.preferredIndex + 1) % this.nodes.length;
    for (const [topic, leader] of this.leaderByTopic) {
      if (leader.key === addr.key) this.leaderByTopic.delete(topic);
    }
  }

  cachedTopicCount(): number {
    return this.leaderByTopic.size;
  }
}
