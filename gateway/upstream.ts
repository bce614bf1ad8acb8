/**
 * The narrow view of the cluster the gateway programs against: one typed `request` per binary
 * protocol operation. `node/client`'s WalrusClient provides it (leader routing, pooled pipelined
 * connections); server.ts adapts it. Keeping the seam this narrow lets route tests run against any
 * implementation of the messages.ts contract.
 */
import type { Request, RequestOp, ResponseOf } from '../node/protocol/messages.js';

export interface UpstreamCallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

export type RequestFor<Op extends RequestOp> = Extract<Request, { op: Op }>;

export interface Upstream {
  request<Op extends RequestOp>(req: RequestFor<Op>, options?: UpstreamCallOptions): Promise<ResponseOf<Op>>;
}
