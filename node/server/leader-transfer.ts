/**
 * `transfer-leader N` on the Raft leader (walrus-cli, over the peer port like remove-node): asks
 * the Raft core to hand leadership to voter N (it brings N's log up to date, then tells N to
 * campaign at once) and answers when N leads, so the operator sees the result, not a request.
 * Bounded: a transfer that has not happened within `waitMsMax` (the core itself abandons one
 * after an election timeout) is answered UNAVAILABLE, and the cluster keeps whatever leader it has.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ClusterView } from '../topics/ports.js';

export const leaderTransferLimits = {
  /** Longest wait for the target to take over. */
  waitMsMax: 5_000,
  /** How often the leader is looked at meanwhile. */
  pollIntervalMs: 20,
} as const;

export async function transferLeader(
  to: number,
  self: number,
  cluster: ClusterView,
): Promise<{ leaderId: number }> {
  if (!cluster.voters().includes(to))
    throw new WalrusError(ErrorCode.BAD_REQUEST, `node ${to} is not a voter; only a voter can lead`);
  if (cluster.raftLeaderId() === to) return { leaderId: to };
  if (cluster.raftLeaderId() !== self)
    throw new WalrusError(ErrorCode.NOT_LEADER, `node ${self} is not the Raft leader; ask the leader`);
  if (cluster.transferLeadership === undefined)
    throw new WalrusError(ErrorCode.BAD_REQUEST, 'this node cannot transfer its leadership');
  cluster.transferLeadership(to);
  const deadline = Date.now() + leaderTransferLimits.waitMsMax;
  for (;;) {
    const leader = cluster.raftLeaderId();
    if (leader === to) return { leaderId: to };
    if (Date.now() > deadline) {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `node ${to} did not take the Raft leadership within ${leaderTransferLimits.waitMsMax} ms (leader now: ${leader || 'none'}); retry`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, leaderTransferLimits.pollIntervalMs));
  }
}
