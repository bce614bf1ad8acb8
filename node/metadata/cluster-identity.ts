/**
 * Who a node lets in, by identity: the rule behind the peer handshake's (cluster id, node id,
 * incarnation), the operator's messages when a peer is refused, and how a cluster whose metadata
 * has no id yet (one written by an older version) gets one.
 *
 * Why: a node whose data directory was wiped comes back with an empty log under its old id. Were
 * it let in, its vote could elect a leader that lacks committed entries; started without --join it
 * would bootstrap a second cluster its old peers might talk to. So every node refuses Raft traffic
 * and joins (both directions of the handshake) from a peer
 * - of another cluster (both cluster ids known and different), or
 * - whose incarnation differs from the one the metadata records for its node id.
 * A node that is not a member is let through: all it can do is ask to join, and the join is judged
 * by the same rule on the Raft leader (raft-node.ts). A member recorded without an incarnation
 * (registered by an older version) accepts the first incarnation seen until the member registers
 * again with it.
 *
 * The guard is shaped like node/transport's PeerIdentityPolicy (node/bin wires it in); this folder
 * does not import the transport.
 */
import type { Logger } from '../log.js';
import assert from 'node:assert/strict';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { type Scheduler, realScheduler, sleep } from '../scheduler.js';
import { isIdentityId, newIdentityId } from './identity-id.js';
import type { MetaCommand, MetadataState } from './metadata-state.js';

/** A node as the peer handshake presents it; null where it does not know (or have) the id. */
export interface PeerIdentity {
  readonly clusterId: string | null;
  readonly nodeId: number;
  readonly incarnation: string | null;
}

export const clusterIdentityLimits = {
  /** A refused peer retries about every second: one error line per peer and reason per interval. */
  refusalLogIntervalMs: 10_000,
  /** How often a node looks for the cluster id in the metadata (proposing one when it leads). */
  clusterIdCheckIntervalMs: 500,
  /** Refused (peer, reason) pairs remembered for rate limiting; beyond it the memory starts over. */
  refusalLogEntryCountMax: 1_024,
} as const;

/** The message for a member that presents another incarnation than the recorded one. */
export function identityMismatchMessage(nodeId: number, presented: string | null, recorded: string): string {
  return (
    `node ${nodeId} presents incarnation ${presented ?? '(none)'} but the cluster records incarnation ` +
    `${recorded} for node ${nodeId}: its data directory was wiped or replaced, and a node with an empty ` +
    'log must not vote or rejoin under its old identity. To add it back, run ' +
    `\`walrus-cli remove-node ${nodeId}\` against a healthy node, then start node ${nodeId} with an ` +
    "empty data directory and --join <a member's raft address>: it is re-added as a learner and catches up"
  );
}

/** The message for a peer of another cluster. */
export function clusterMismatchMessage(peerNodeId: number, peerCluster: string, ownCluster: string): string {
  return (
    `node ${peerNodeId} belongs to cluster ${peerCluster} and this node to cluster ${ownCluster}: nodes ` +
    "of different clusters refuse each other's Raft traffic and joins. A node whose data directory was " +
    'wiped and that was started without --join bootstraps a new cluster of its own: stop it, run ' +
    '`walrus-cli remove-node <its id>` against a healthy node of the old cluster, empty its data ' +
    "directory and start it with --join <a member's raft address>"
  );
}

/** The node's one Logger (node/log.ts), under this module's name. */
export type PeerIdentityGuardLogger = Logger;

export interface PeerIdentityGuardOptions {
  readonly nodeId: number;
  /** This node's persisted identity (RaftIdentity); the cluster id may be learnt later. */
  readonly identity: { readonly clusterId: string | null; readonly incarnation: string };
  readonly state: MetadataState;
  readonly logger: PeerIdentityGuardLogger;
  readonly nowMs?: () => number;
}

type Refusal = { readonly reason: 'cluster' | 'incarnation'; readonly message: string };

export class PeerIdentityGuard {
  private readonly o: PeerIdentityGuardOptions;
  private readonly nowMs: () => number;
  /** Members recorded without an incarnation: the first one seen (bounded by the members). */
  private readonly pinned = new Map<number, string>();
  /** `${nodeId}/${reason}` → when it was last logged. */
  private readonly loggedAtMs = new Map<string, number>();

  constructor(o: PeerIdentityGuardOptions) {
    this.o = o;
    this.nowMs = o.nowMs ?? Date.now;
  }

  /** What this node presents in a handshake, read anew each time (a joiner learns its cluster id). */
  self(): PeerIdentity {
    return {
      clusterId: this.o.identity.clusterId,
      nodeId: this.o.nodeId,
      incarnation: this.o.identity.incarnation,
    };
  }

  /** Throws WalrusError IDENTITY_MISMATCH when `peer` must be refused (and logs it, rate-limited). */
  check(peer: PeerIdentity): void {
    const refusal = this.judge(peer);
    if (refusal === null) return;
    this.logRefusal(peer, refusal);
    throw new WalrusError(ErrorCode.IDENTITY_MISMATCH, refusal.message);
  }

  private judge(peer: PeerIdentity): Refusal | null {
    const own = this.o.identity;
    if (peer.nodeId === this.o.nodeId && peer.incarnation !== own.incarnation) {
      return {
        reason: 'incarnation',
        message: identityMismatchMessage(peer.nodeId, peer.incarnation, own.incarnation),
      };
    }
    if (own.clusterId !== null && peer.clusterId !== null && peer.clusterId !== own.clusterId) {
      return {
        reason: 'cluster',
        message: clusterMismatchMessage(peer.nodeId, peer.clusterId, own.clusterId),
      };
    }
    const member = this.o.state.nodes.get(peer.nodeId);
    if (member === undefined || member.incarnation !== undefined) this.pinned.delete(peer.nodeId);
    if (member === undefined) return null;
    let recorded = member.incarnation ?? this.pinned.get(peer.nodeId);
    if (recorded === undefined && peer.incarnation !== null) {
      this.pinned.set(peer.nodeId, peer.incarnation);
      recorded = peer.incarnation;
    }
    if (recorded === undefined || recorded === peer.incarnation) return null;
    return {
      reason: 'incarnation',
      message: identityMismatchMessage(peer.nodeId, peer.incarnation, recorded),
    };
  }

  private logRefusal(peer: PeerIdentity, refusal: Refusal): void {
    const key = `${peer.nodeId}/${refusal.reason}`;
    const now = this.nowMs();
    const last = this.loggedAtMs.get(key);
    if (last !== undefined && now - last < clusterIdentityLimits.refusalLogIntervalMs) return;
    if (this.loggedAtMs.size >= clusterIdentityLimits.refusalLogEntryCountMax) this.loggedAtMs.clear();
    this.loggedAtMs.set(key, now);
    this.o.logger.error(
      {
        peerNodeId: peer.nodeId,
        peerClusterId: peer.clusterId,
        peerIncarnation: peer.incarnation,
        code: ErrorCode.IDENTITY_MISMATCH,
      },
      `Refusing node ${peer.nodeId}: ${refusal.message}`,
    );
  }
}

/** What ensureClusterId needs of the Raft driver. */
export interface ClusterIdRaft {
  readonly state: MetadataState;
  readonly isLeader: boolean;
  propose(command: MetaCommand): Promise<number>;
}

/**
 * Runs until this node's identity and the metadata agree on the cluster id: while the metadata has
 * none, the Raft leader proposes its own (made when it bootstrapped the cluster) or, on a cluster
 * upgraded from a version without cluster ids, a new one; every node then adopts the applied one,
 * durably. A node that holds another id than the applied one keeps its own and logs an error (its
 * peers refuse it). Ends early when `signal` aborts.
 */
export async function ensureClusterId(o: {
  raft: ClusterIdRaft;
  identity: { readonly clusterId: string | null; adoptClusterId(id: string): void };
  logger: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
  signal: AbortSignal;
  intervalMs?: number;
  /** Timers (default the real ones). */
  scheduler?: Scheduler;
}): Promise<void> {
  const intervalMs = o.intervalMs ?? clusterIdentityLimits.clusterIdCheckIntervalMs;
  while (!o.signal.aborted) {
    const applied = o.raft.state.clusterId;
    if (applied !== null) {
      const own = o.identity.clusterId;
      if (own === null) {
        o.identity.adoptClusterId(applied);
        o.logger.info({ clusterId: applied }, 'Learnt the cluster id from the metadata');
      } else if (own !== applied) {
        o.logger.error(
          { clusterId: own, metadataClusterId: applied },
          `this node's raft_meta/identity.bin says cluster ${own} but the metadata it applied says ` +
            `${applied}: it has mixed two clusters' state; rebuild it (remove it from the cluster, empty ` +
            'its data directory and start it with --join)',
        );
      }
      return;
    }
    if (o.raft.isLeader) {
      const proposal = o.identity.clusterId ?? newIdentityId();
      assert.ok(isIdentityId(proposal), 'a persisted cluster id is well-formed');
      try {
        await o.raft.propose({ type: 'setClusterId', clusterId: proposal });
        continue;
      } catch {
        // Leadership moved or the proposal timed out: look again after the interval.
      }
    }
    await sleep(o.scheduler ?? realScheduler, intervalMs);
  }
}
