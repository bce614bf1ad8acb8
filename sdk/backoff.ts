/**
 * Bounded retries with exponential backoff and jitter, cancellable with an AbortSignal. Used by the
 * client for retryable answers and by tail() for reconnects.
 */

export interface RetryPolicy {
  /** Attempts in total, including the first (default 4). */
  readonly attemptCountMax: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
}

export const defaultRetryPolicy: RetryPolicy = { attemptCountMax: 4, delayMsMin: 100, delayMsMax: 2_000 };

/** Delay before retry number `retry` (1-based): full jitter over an exponential ceiling. */
export function backoffDelayMs(policy: RetryPolicy, retry: number): number {
  const ceiling = Math.min(policy.delayMsMax, policy.delayMsMin * 2 ** Math.max(0, retry - 1));
  return policy.delayMsMin / 2 + Math.random() * (ceiling - policy.delayMsMin / 2);
}

/** Resolves after ms, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
