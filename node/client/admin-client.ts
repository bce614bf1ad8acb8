/**
 * Admin operations the client port refuses (it is not authenticated): `removeNode` and
 * `transferLeader` are sent to the Raft leader's peer port instead, where the cluster secret authenticates the caller like any
 * peer (node/transport/peer-auth.ts). The leader and its peer address come from the METRICS JSON
 * of any node's client port (seed 002's `current_leader` and `membership_config`), so an operator
 * names a client address, as for every other command, plus the secret when the cluster has one.
 *
 * The tool presents node id `adminToolNodeId`, which no member may have, and no cluster identity:
 * the node accepts it as it accepts a joiner, and runs the request as one another node forwarded
 * (request-handler.ts executeForwarded). A NOT_LEADER or other retryable answer (a leader change)
 * is retried from a fresh METRICS, at most `attemptCountMax` times.
 */
import type tls from 'node:tls';
import { decodeReply, encodeRequest } from '../protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { Request, ResponseByOp } from '../protocol/messages.js';
import { anonymousIdentityPolicy } from '../transport/peer-auth.js';
import { PeerLink } from '../transport/peer-link.js';
import { WalrusClient } from './walrus-client.js';

/** The node id an admin tool presents on a peer port: the largest u32, never a member's. */
export const adminToolNodeId = 0xffff_ffff;

export const adminClientLimits = {
  /** Attempts of one admin call (each reads METRICS again to find the Raft leader). */
  attemptCountMax: 5,
  /** Wait between attempts. */
  retryDelayMs: 250,
  /** One-way messages a tool's peer link may queue (it sends none). */
  queueCountMax: 16,
  queueBytesMax: 64 * 1024,
} as const;

export interface AdminOptions {
  /** Any node's client port, host:port. */
  readonly addr: string;
  /** The cluster's shared secret; null for an open cluster. */
  readonly clusterSecret: string | null;
  /** Time limit of each step (METRICS, connect, the request). */
  readonly timeoutMs: number;
  /** How to reach a secured cluster: a client token, and TLS for both ports (CA; cert and key for mutual TLS). */
  readonly access?: NodeAccess;
}

/** A client token for nodes with client tokens, and TLS options for nodes that speak TLS. */
export interface NodeAccess {
  readonly token?: string;
  readonly tls?: tls.ConnectionOptions;
}

interface LeaderAddress {
  readonly nodeId: number;
  readonly raftAddr: string;
}

/** The Raft leader and its peer address, as the node at `addr` sees them. */
async function raftLeader(options: AdminOptions): Promise<LeaderAddress> {
  const client = new WalrusClient({
    nodes: [options.addr],
    requestTimeoutMs: options.timeoutMs,
    ...options.access,
  });
  try {
    const metrics = (await client.metrics()) as {
      current_leader?: number | null;
      membership_config?: { membership?: { nodes?: Record<string, { addr?: string }> } };
    };
    const leader = metrics.current_leader;
    const raftAddr =
      leader === null || leader === undefined
        ? undefined
        : metrics.membership_config?.membership?.nodes?.[String(leader)]?.addr;
    if (leader === null || leader === undefined || raftAddr === undefined) {
      throw new WalrusError(ErrorCode.UNAVAILABLE, `node ${options.addr} knows no Raft leader now; retry`);
    }
    return { nodeId: leader, raftAddr };
  } finally {
    await client.close();
  }
}

/** The admin ops, sent to the Raft leader's peer port. */
type AdminRequest = Extract<Request, { op: 'removeNode' | 'transferLeader' }>;

/** Runs an admin op on the Raft leader, retried (from a fresh METRICS) while the answer is retryable. */
async function adminCall<Op extends AdminRequest['op']>(
  request: Extract<AdminRequest, { op: Op }>,
  options: AdminOptions,
): Promise<ResponseByOp[Op]> {
  let last: WalrusError | undefined;
  for (let attempt = 0; attempt < adminClientLimits.attemptCountMax; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, adminClientLimits.retryDelayMs));
    try {
      return await callOnce(request, options);
    } catch (error) {
      if (!(error instanceof WalrusError)) throw error;
      last = error;
      if (!error.retryable) throw error;
    }
  }
  throw last ?? new WalrusError(ErrorCode.UNAVAILABLE, `${request.op} did not run`);
}

/** Removes a member (docs/cluster.md "Removing a node"), authenticated on the leader's peer port. */
export function removeNodeAsAdmin(nodeId: number, options: AdminOptions): Promise<{ removed: boolean }> {
  return adminCall({ op: 'removeNode', nodeId }, options);
}

/** Makes voter `nodeId` the Raft leader; resolves once it leads (node/server/leader-transfer.ts). */
export function transferLeaderAsAdmin(nodeId: number, options: AdminOptions): Promise<{ leaderId: number }> {
  return adminCall({ op: 'transferLeader', nodeId }, options);
}

async function callOnce<Op extends AdminRequest['op']>(
  request: Extract<AdminRequest, { op: Op }>,
  options: AdminOptions,
): Promise<ResponseByOp[Op]> {
  const leader = await raftLeader(options);
  const link = new PeerLink({
    selfNodeId: adminToolNodeId,
    addr: leader.raftAddr,
    clusterSecret: options.clusterSecret,
    identity: anonymousIdentityPolicy(adminToolNodeId),
    peerNodeId: leader.nodeId,
    queueCountMax: adminClientLimits.queueCountMax,
    queueBytesMax: adminClientLimits.queueBytesMax,
    connectTimeoutMs: options.timeoutMs,
    requestTimeoutMs: options.timeoutMs,
    reconnectBackoffMsMin: adminClientLimits.retryDelayMs,
    reconnectBackoffMsMax: adminClientLimits.retryDelayMs,
    ...(options.access?.tls === undefined ? {} : { tls: options.access.tls }),
  });
  try {
    const reply = decodeReply(await link.request(encodeRequest(1, request)));
    if (reply.kind === 'response' && reply.op === request.op) return reply.response as ResponseByOp[Op];
    if (reply.kind === 'error') throw new WalrusError(reply.error.code, reply.error.message);
    throw new WalrusError(
      ErrorCode.INTERNAL,
      `node ${leader.nodeId} sent a reply that is not ${request.op}'s`,
    );
  } finally {
    await link.close();
  }
}
