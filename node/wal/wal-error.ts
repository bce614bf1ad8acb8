/**
 * The WAL's one error class. node/wal imports nothing of ours, so it cannot use WalrusError; its
 * codes are spelled exactly like entries of node/protocol/error-codes.ts so the node layer maps a
 * WalError to a WalrusError 1:1 by `code`. Operating errors (bad input, full disk, corruption)
 * are WalErrors; programmer errors are `node:assert` failures.
 */

export const WalErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  RECORD_TOO_LARGE: 'RECORD_TOO_LARGE',
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
  DISK_FULL: 'DISK_FULL',
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  CORRUPT_RECORD: 'CORRUPT_RECORD',
  TOPIC_NOT_FOUND: 'TOPIC_NOT_FOUND',
  UNAVAILABLE: 'UNAVAILABLE',
} as const;

export type WalErrorCode = (typeof WalErrorCode)[keyof typeof WalErrorCode];

export class WalError extends Error {
  readonly code: WalErrorCode;
  /**
   * Set (with code BAD_REQUEST) when `appendReplicated` got records that leave a gap after the
   * segment's end: the offset the replica expects next, from where the sender should resend.
   */
  readonly expectedOffset?: number;

  constructor(code: WalErrorCode, message: string, options?: { cause?: unknown; expectedOffset?: number }) {
    super(message, options !== undefined && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'WalError';
    this.code = code;
    if (options?.expectedOffset !== undefined) this.expectedOffset = options.expectedOffset;
  }
}

/** Maps a failed file operation to a WalError: ENOSPC/EDQUOT are DISK_FULL, anything else UNAVAILABLE. */
export function walErrorFromIo(error: unknown, what: string): WalError {
  if (error instanceof WalError) return error;
  const errno = (error as { code?: unknown } | null)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new WalError(WalErrorCode.DISK_FULL, `${what}: no space left on device`, { cause: error });
  }
  const text = typeof errno === 'string' ? errno : String(error);
  return new WalError(WalErrorCode.UNAVAILABLE, `${what}: ${text}`, { cause: error });
}
