/**
 * Wraps the upstream with the gateway's own bookkeeping: counts errors by operation and code,
 * turns transport failures that are not WalrusErrors into UNAVAILABLE (503, retryable) rather than
 * INTERNAL, and retries retryable errors a bounded number of times for operations that are safe to
 * repeat (reads, metadata, idempotent-producer appends). Leader routing and NOT_LEADER refreshes
 * happen below, in node/client; this layer only bounds what reaches the HTTP client.
 */
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import type { RequestOp, ResponseOf } from '../node/protocol/messages.js';
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
  'metrics',
  'state',
]);

function isRepeatable(req: RequestFor<RequestOp>): boolean {
  if (req.op === 'append') return req.producerId !== undefined;
  return repeatableOps.has(req.op);
}

function toWalrusError(error: unknown): WalrusError {
  if (error instanceof WalrusError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(ErrorCode, code)) {
    return new WalrusError(code as ErrorCode, (error as Error).message);
  }
  if ((error as Error | null)?.name === 'AbortError') {
    return new WalrusError(ErrorCode.UNAVAILABLE, 'the request was aborted', { cause: error });
  }
  return new WalrusError(ErrorCode.UNAVAILABLE, 'the cluster could not be reached', { cause: error });
}

export function guardUpstream(upstream: Upstream, metrics: GatewayMetrics): Upstream {
  /** The slow path, entered only after a failure: count it, then retry within the bound or throw. */
  async function recover<Op extends RequestOp>(
    req: RequestFor<Op>,
    options: UpstreamCallOptions | undefined,
    firstError: unknown,
  ): Promise<ResponseOf<Op>> {
    const attemptsMax = isRepeatable(req as RequestFor<RequestOp>) ? upstreamAttemptCountMax : 1;
    let error = firstError;
    for (let attempt = 1; ; attempt++) {
      const e = toWalrusError(error);
      metrics.upstreamErrors.inc({ op: req.op, code: e.code });
      if (!e.retryable || attempt >= attemptsMax || options?.signal?.aborted) throw e;
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
