/**
 * The node's peers by id: one reconnecting, authenticated PeerLink per peer, created on first use
 * from the addresses the cluster metadata holds; each link presents this node's identity and
 * refuses a server that is not the member it expects (the node's PeerIdentityGuard, and the node id
 * at that address). Also the ClusterView the topic service and the server route with
 * (leader, voters, liveness, forwarding a client request to another node over the peer link).
 *
 * A forwarded request that changes state and whose peer connection then fails or times out (the
 * target may have applied it: a segment leader killed after it wrote) fails OUTCOME_UNKNOWN, never
 * a retryable UNAVAILABLE/TIMEOUT (error-codes.ts, "Honest retry advice").
 */
import type tls from 'node:tls';
import { decodeReply, decodeRequest, encodeRequest } from '../protocol/binary-codec.js';
import { PeerOpcode } from '../protocol/binary-header.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { Request, RequestOp, ResponseByOp } from '../protocol/messages.js';
import { changesState, outcomeUnknownError } from '../protocol/outcome.js';
import { TransportError } from '../transport/transport-error.js';
import type { PeerIdentityPolicy } from '../transport/peer-auth.js';
import { PeerLink } from '../transport/peer-link.js';
import type { ClusterView } from '../topics/ports.js';
import type { MetadataState } from '../metadata/metadata-state.js';
import type { PeerSender, RaftNode } from '../metadata/raft-node.js';
import type { Logger } from '../log.js';

export const peerLimits = {
  queueCountMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  connectTimeoutMs: 2000,
  requestTimeoutMs: 10_000,
  reconnectBackoffMsMin: 20,
  reconnectBackoffMsMax: 1000,
  /** Forwarded long polls get their wait plus this. */
  forwardSlackMs: 5000,
} as const;

export class PeerDirectory implements PeerSender {
  private readonly links = new Map<number, PeerLink>();
  /** Addresses learnt before the metadata holds them (the join target). */
  private readonly bootAddrs = new Map<number, string>();

  constructor(
    private readonly selfNodeId: number,
    private readonly state: MetadataState,
    private readonly clusterSecret: string | null,
    private readonly identity: PeerIdentityPolicy,
    private readonly logger: Logger,
    /** TLS to the peers' raft ports (--tls-ca; cert and key with --peer-mtls). Default plain TCP. */
    private readonly tls?: tls.ConnectionOptions,
  ) {}

  private link(to: number): PeerLink | undefined {
    const known = this.state.nodes.get(to)?.raftAddr;
    if (known !== undefined) this.bootAddrs.delete(to); // the metadata holds it from now on
    const addr = known ?? this.bootAddrs.get(to);
    let link = this.links.get(to);
    if (addr === undefined) {
      // A removed member: stop reconnecting to it (links stay bounded by the membership).
      if (link !== undefined) {
        void link.close();
        this.links.delete(to);
      }
      return undefined;
    }
    if (link !== undefined && link.addr !== addr) {
      void link.close();
      link = undefined;
    }
    if (link === undefined) {
      link = new PeerLink({
        selfNodeId: this.selfNodeId,
        addr,
        clusterSecret: this.clusterSecret,
        identity: this.identity,
        peerNodeId: to,
        queueCountMax: peerLimits.queueCountMax,
        queueBytesMax: peerLimits.queueBytesMax,
        connectTimeoutMs: peerLimits.connectTimeoutMs,
        requestTimeoutMs: peerLimits.requestTimeoutMs,
        reconnectBackoffMsMin: peerLimits.reconnectBackoffMsMin,
        reconnectBackoffMsMax: peerLimits.reconnectBackoffMsMax,
        ...(this.tls === undefined ? {} : { tls: this.tls }),
        logger: this.logger,
      });
      this.links.set(to, link);
    }
    return link;
  }

  /** Remembers addresses told by the join target until the metadata log holds them. */
  learn(nodes: readonly { nodeId: number; raftAddr: string }[]): void {
    for (const n of nodes) if (n.nodeId !== this.selfNodeId) this.bootAddrs.set(n.nodeId, n.raftAddr);
  }

  /** True when the link to `to` is connected (it is made, and connects, on first ask). */
  connected(to: number): boolean {
    return to === this.selfNodeId || this.link(to)?.connected === true;
  }

  send(to: number, payload: Uint8Array): void {
    this.link(to)?.send(payload);
  }

  request(to: number, payload: Uint8Array, timeoutMs: number): Promise<Buffer> {
    const link = this.link(to);
    if (link === undefined) {
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, `no address known for node ${to}`));
    }
    return link.request(payload, { timeoutMs });
  }

  requestSnapshotChunk(to: number, body: Uint8Array, timeoutMs: number): Promise<Buffer> {
    const link = this.link(to);
    if (link === undefined) {
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, `no address known for node ${to}`));
    }
    return link.request(body, { timeoutMs, opcode: PeerOpcode.snapshotChunk });
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.close()));
    this.links.clear();
  }
}

/** The topic service's view of a Raft cluster, forwarding over the peer links. */
export function raftClusterView(
  raft: RaftNode,
  peers: Pick<PeerSender, 'request'> & { connected?(to: number): boolean },
): ClusterView {
  return {
    reachable: (nodeId) => nodeId === raft.nodeId || peers.connected?.(nodeId) === true,
    raftLeaderId: () => raft.leaderId,
    voters: () => [...raft.status().voters],
    aliveVoters: () => raft.aliveVoters(),
    removeNode: (nodeId) => raft.removeNode(nodeId),
    handLeadershipAway: () => raft.handLeadershipAway(),
    transferLeadership: (to) => raft.transferLeadership(to),
    catchUpWithLeader: () => raft.catchUpWithLeader(),
    replicate: (nodeId, request, timeoutMs) => peers.request(nodeId, request, timeoutMs),
    forwardRaw: (nodeId, frame, waitMs) =>
      peers
        .request(nodeId, frame, peerLimits.requestTimeoutMs + waitMs + peerLimits.forwardSlackMs)
        .catch((error: unknown) => {
          const decoded = decodeRequest(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
          throw decoded.kind === 'request' ? honestForwardFailure(decoded.request, error) : error;
        }),
    async forward<Op extends RequestOp>(
      nodeId: number,
      request: Extract<Request, { op: Op }>,
    ): Promise<ResponseByOp[Op]> {
      const asked = request as Request;
      const waitMs = asked.op === 'read' ? asked.waitMs : 0;
      const bytes = await peers
        .request(
          nodeId,
          encodeRequest(1, request),
          peerLimits.requestTimeoutMs + waitMs + peerLimits.forwardSlackMs,
        )
        .catch((error: unknown) => {
          throw honestForwardFailure(asked, error);
        });
      const reply = decodeReply(bytes);
      if (reply.kind === 'response') return reply.response as ResponseByOp[Op];
      if (reply.kind === 'error') {
        throw new WalrusError(
          reply.error.code,
          reply.error.message,
          reply.error.leaderHint ? { leaderHint: reply.error.leaderHint } : undefined,
        );
      }
      throw reply.error;
    },
  };
}

/**
 * A forwarded request's transport failure as its caller must see it: OUTCOME_UNKNOWN when the
 * request changes state and may have reached the target (TransportError.sent), else unchanged.
 */
export function honestForwardFailure(request: Request, error: unknown): unknown {
  if (error instanceof TransportError && error.sent && error.retryable && changesState(request)) {
    return outcomeUnknownError(request.op, error);
  }
  return error;
}
