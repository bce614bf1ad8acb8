/**
 * The SDK's one error class and the retry advice of every code. Every failure of an API call is a
 * WalrusApiError carrying the stable `code` of the problem+json answer (the same codes as the
 * cluster's binary protocol, the `ErrorCode` enum of openapi.yaml), the HTTP `status` and the
 * server's `detail`.
 *
 * Honest retry advice: a `retryable` code means the request was not applied, so any request may
 * be repeated as it is. OUTCOME_UNKNOWN (`mayHaveBeenApplied`) means it may have been: the client
 * repeats it only when it is safe to (an append with a producer id, which the cluster
 * deduplicates; reads; idempotent updates). A network failure before the request was sent
 * (refused, no route, connect timeout) is UNAVAILABLE with status 0; one after it may have been
 * sent is OUTCOME_UNKNOWN with status 0 (UNAVAILABLE for GET and HEAD, which change nothing).
 */
import type { components } from './generated/api.js';

/** A stable error code: the ErrorCode enum of openapi.yaml. */
export type ErrorCode = components['schemas']['ErrorCode'];

/** Every code of the spec by name (a build error if the spec gains or loses one). */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  INVALID_TOPIC_NAME: 'INVALID_TOPIC_NAME',
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  RECORD_TOO_LARGE: 'RECORD_TOO_LARGE',
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
  TOPIC_NOT_FOUND: 'TOPIC_NOT_FOUND',
  TOPIC_EXISTS: 'TOPIC_EXISTS',
  CONSUMER_NOT_FOUND: 'CONSUMER_NOT_FOUND',
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  OFFSET_MISMATCH: 'OFFSET_MISMATCH',
  SEQUENCE_MISMATCH: 'SEQUENCE_MISMATCH',
  NOT_LEADER: 'NOT_LEADER',
  FENCED: 'FENCED',
  UNAVAILABLE: 'UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  OUTCOME_UNKNOWN: 'OUTCOME_UNKNOWN',
  BUSY: 'BUSY',
  DISK_FULL: 'DISK_FULL',
  CORRUPT_RECORD: 'CORRUPT_RECORD',
  DATA_LOST: 'DATA_LOST',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  NOT_ACCEPTABLE: 'NOT_ACCEPTABLE',
  CONFLICT: 'CONFLICT',
  TRANSFER_IN_PROGRESS: 'TRANSFER_IN_PROGRESS',
  CONF_CHANGE_PENDING: 'CONF_CHANGE_PENDING',
  BAD_CONF_CHANGE: 'BAD_CONF_CHANGE',
  LEARNER_NOT_CAUGHT_UP: 'LEARNER_NOT_CAUGHT_UP',
  BAD_COMPACT_INDEX: 'BAD_COMPACT_INDEX',
  INVALID_CONFIG: 'INVALID_CONFIG',
  READ_INDEX_NOT_READY: 'READ_INDEX_NOT_READY',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  STREAM_CLOSED: 'STREAM_CLOSED',
  PRODUCER_FENCED: 'PRODUCER_FENCED',
  STREAM_GONE: 'STREAM_GONE',
  INTERNAL: 'INTERNAL',
} as const satisfies { readonly [K in ErrorCode]: K };

/**
 * Codes after which the same request may succeed later without change: it was not applied
 * (mirrors the server's table; a unit test keeps them equal).
 */
export const retryableCodes: ReadonlySet<string> = new Set<ErrorCode>([
  'NOT_LEADER',
  'FENCED',
  'UNAVAILABLE',
  'TIMEOUT',
  'BUSY',
  'DISK_FULL',
  'TRANSFER_IN_PROGRESS',
  'CONF_CHANGE_PENDING',
  'LEARNER_NOT_CAUGHT_UP',
  'READ_INDEX_NOT_READY',
]);

/** Codes after which the failed request may nevertheless have taken effect (mirrors the server's table). */
export const mayHaveBeenAppliedCodes: ReadonlySet<string> = new Set<ErrorCode>([
  'OUTCOME_UNKNOWN',
  'INTERNAL',
]);

export interface ProblemBody {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly code?: string;
  readonly retryable?: boolean;
  readonly mayHaveBeenApplied?: boolean;
  readonly detail?: string;
  readonly instance?: string;
  readonly [extension: string]: unknown;
}

export class WalrusApiError extends Error {
  /** An ErrorCode; a string, so that a code added by a newer gateway still reads. */
  readonly code: ErrorCode | (string & {});
  readonly status: number;
  readonly detail: string;
  /** The whole problem body (e.g. startOffset/endOffset with OFFSET_OUT_OF_RANGE). */
  readonly problem: ProblemBody;

  constructor(
    code: string,
    status: number,
    detail: string,
    problem: ProblemBody = {},
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${detail}`, options);
    this.name = 'WalrusApiError';
    this.code = code;
    this.status = status;
    this.detail = detail;
    this.problem = problem;
  }

  /** True when the request was not applied and may be repeated as it is. */
  get retryable(): boolean {
    return retryableCodes.has(this.code);
  }

  /** True when the request may have taken effect: repeat it only if it is idempotent. */
  get mayHaveBeenApplied(): boolean {
    return mayHaveBeenAppliedCodes.has(this.code) || this.problem.mayHaveBeenApplied === true;
  }
}

/** Builds the error from an HTTP answer that is not 2xx (body read here). */
export async function errorFromResponse(res: Response): Promise<WalrusApiError> {
  let problem: ProblemBody = {};
  try {
    problem = (await res.json()) as ProblemBody;
  } catch {
    // Not problem+json (a proxy in between?): keep the status.
  }
  const code = typeof problem.code === 'string' ? problem.code : codeOfStatus(res.status);
  return new WalrusApiError(code, res.status, problem.detail ?? res.statusText, problem);
}

/** The code an answer without a problem body (a proxy's) stands for. */
export function codeOfStatus(status: number): ErrorCode {
  if (status === 429) return 'BUSY';
  if (status === 503) return 'UNAVAILABLE';
  // A proxy answers 502 or 504 when its upstream failed or timed out after it forwarded the
  // request: the outcome is unknown.
  if (status === 502 || status === 504) return 'OUTCOME_UNKNOWN';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}
