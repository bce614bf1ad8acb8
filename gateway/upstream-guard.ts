/**
 * Wraps the upstream with the gateway's own bookkeeping: counts errors by operation and code,
 * turns transport failures that are not WalrusErrors into UNAVAILABLE (503, retryable) rather than
 * INTERNAL, and retries a bounded number of times what the code table says is safe: a retryable
 * code (nothing was applied) for any operation, OUTCOME_UNKNOWN (it may have been applied) only for
 * operations that are safe to repeat (reads, metadata, idempotent-producer appends). Leader routing
 * and NOT_LEADER refreshes happen below, in node/client; this layer only bounds what reaches the
 * HTTP client.
 */
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import type { RequestOp, ResponseOf } from '../node/protocol/messages.js';
import { changesState, outcomeUnknownError } from '../node/protocol/outcome.js';
import { upstreamAttemptCountMax, upstreamRetryDelayMsMax, upstreamRetryDelayMsMin } from './limits.js';
import type { GatewayMetrics } from './metrics.js';
import type { RequestFor, Upstream, UpstreamCallOptions } from './upstream.js';

const repeatableOps: ReadonlySet<RequestOp> = new Set<RequestOp>([
  'ping',
  'createTopic',
  'describeTopic',
  'listTopics',
  'configureTopic',
  'read',
  'offsetForTimestamp',
  'consumerCommit',
  'consumerGet',
  'consumerList',
  'consumerDelete',
  'metrics',
  'state',
]);

function isRepeatable(req: RequestFor<RequestOp>): boolean {
  if (req.op === 'append') return req.producerId !== undefined;
  return repeatableOps.has(req.op);
}

function toWalrusError(req: RequestFor<RequestOp>, error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(ErrorCode, code)) {
    return new WalrusError(code as ErrorCode, (error as Error).message);
  }
  if ((error as Error | null)?.name === 'AbortError') {
    return new WalrusError(ErrorCode.UNAVAILABLE, 'the request was aborted', { cause: error });
  }
  // Not an error of the client's (a bug below): a request that changes state may have been applied.
  if (changesState(req))
    return outcomeUnknownError(req.op, new WalrusError(ErrorCode.INTERNAL, String(error)));
  return new WalrusError(ErrorCode.UNAVAILABLE, 'the cluster could not be reached', { cause: error });
}

export function guardUpstream(upstream: Upstream, metrics: GatewayMetrics): Upstream {
  /** The slow path, entered only after a failure: count it, then retry within the bound or throw. */
  async function recover<Op extends RequestOp>(
    req: RequestFor<Op>,
    options: UpstreamCallOptions | undefined,
    firstError: unknown,
  ): Promise<ResponseOf<Op>> {
    const repeatable = isRepeatable(req as RequestFor<RequestOp>);
    let error = firstError;
    for (let attempt = 1; ; attempt++) {
      const e = toWalrusError(req as RequestFor<RequestOp>, error);
      metrics.upstreamErrors.inc({ op: req.op, code: e.code });
      const safe = e.retryable || (repeatable && e.code === ErrorCode.OUTCOME_UNKNOWN);
      if (!safe || attempt >= upstreamAttemptCountMax || options?.signal?.aborted) throw e;
      metrics.upstreamRetries.inc({ op: req.op });
      const delayMs = Math.min(upstreamRetryDelayMsMax, upstreamRetryDelayMsMin * 2 ** (attempt - 1));
      await new Promise((resolve) => setTimeout(resolve, delayMs * (0.5 + Math.random() / 2)));
      try {
        return await upstream.request(req, options);
      } catch (next) {
        error = next;
      }
    }
  }
  return {
    // No async frame of its own on the way through: the success path is the upstream's promise.
    request<Op extends RequestOp>(
      req: RequestFor<Op>,
      options?: UpstreamCallOptions,
    ): Promise<ResponseOf<Op>> {
      return upstream.request(req, options).catch((error: unknown) => recover(req, options, error));
    },
  };
}
