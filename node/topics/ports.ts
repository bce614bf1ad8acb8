/**
 * What the topic service needs from the rest of the node, as interfaces it owns: the metadata log
 * (commit a command, read the applied state) and the cluster (who leads Raft, who is alive,
 * forwarding a request to another node). The server and bin layers implement them; tests pass
 * in-process fakes of the cluster and a local metadata log.
 */
import type { Request, RequestOp, ResponseByOp } from '../protocol/messages.js';
import type { MetaCommand, MetadataState } from '../metadata/metadata-state.js';

/** Where metadata commands are committed: the node's own log, or Raft. */
export interface MetadataService {
  readonly state: MetadataState;
  /** Commits the command and resolves with its index once it is applied on this node. */
  propose(command: MetaCommand): Promise<number>;
  /**
   * Resolves once this node may answer from its applied state as of now: it has confirmed it
   * still leads Raft (ReadIndex) and applied everything committed before the call. Rejects with
   * NOT_LEADER otherwise. Used by every read that only the Raft leader may answer.
   */
  readBarrier(): Promise<void>;
}

/** What the topic service needs to know of the cluster (a node alone answers for itself). */
export interface ClusterView {
  /** Raft leader id, 0 when none is known. */
  raftLeaderId(): number;
  /** Voters, ascending. */
  voters(): number[];
  /** Voters heard from within an election timeout (this node included). */
  aliveVoters(): number[];
  /** Whether this node can reach `nodeId` now (its peer link is up; always true for itself). */
  reachable(nodeId: number): boolean;
  /** Removes a member through Raft (configuration change, then its addresses). */
  removeNode(nodeId: number): Promise<boolean>;
  /**
   * The Raft leader hands its leadership to the voter with the longest log and resolves with the
   * new leader's id (bounded; UNAVAILABLE if no other voter took it).
   */
  handLeadershipAway(): Promise<number>;
  /**
   * Asks the Raft core to hand leadership to voter `to` (it waits until `to` has the whole log,
   * then tells it to campaign); returns at once. Optional: only real nodes implement it.
   */
  transferLeadership?(to: number): void;
  /** Resolves once this node has applied what the Raft leader has (read-your-writes after forwarding). */
  catchUpWithLeader(): Promise<void>;
  /**
   * Relays a binary request frame, as the client sent it, to another node to execute there (never
   * forwarded again) and resolves with that node's reply frame, which carries the client's
   * request id: nothing is decoded and encoded again on the way.
   */
  forwardRaw(nodeId: number, frame: Uint8Array, waitMs: number): Promise<Buffer>;
  /**
   * Sends a segment-replication request (node/protocol/replication-codec.ts) to another node's
   * replica service over the peer link; resolves with the reply body, rejects with a WalrusError.
   */
  replicate(nodeId: number, request: Uint8Array, timeoutMs: number): Promise<Buffer>;
  /** Sends a client request to another node to execute there (never forwarded again). */
  forward<Op extends RequestOp>(
    nodeId: number,
    request: Extract<Request, { op: Op }>,
  ): Promise<ResponseByOp[Op]>;
}
