/**
 * The error the transport raises for connection-level failures. It is a `WalrusError` (callers
 * match on `code`) that also says whether the request may have reached the server: `sent: false`
 * means it certainly did not (connect failed, refused, queued and dropped), so even a
 * non-idempotent request may be retried; `sent: true` means the outcome is unknown.
 */
import { type ErrorCode, WalrusError } from '../protocol/error-codes.js';

export class TransportError extends WalrusError {
  /** True when the request bytes may have reached the peer (the outcome is ambiguous). */
  readonly sent: boolean;

  constructor(code: ErrorCode, message: string, sent: boolean, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TransportError';
    this.sent = sent;
  }
}

/** True when the failure leaves the request's outcome unknown (it may have been applied). */
export function isAmbiguousFailure(err: unknown): boolean {
  if (err instanceof TransportError) return err.sent;
  return true;
}
