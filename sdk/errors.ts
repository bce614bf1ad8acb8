/**
 * The SDK's errors and the retry advice of every code. Every failure of an API call is a
 * WalrusApiError (the base class) carrying a typed `code` (the `ErrorCode` enum of openapi.yaml,
 * the same codes as the cluster's binary protocol), the HTTP `status`, the server's `detail`, and
 * the advice `retryable` / `mayHaveBeenApplied`. A failure with no HTTP answer at all is its
 * subclass WalrusNetworkError (status 0).
 *
 * The codes and their advice are generated (generated/error-codes.ts, `npm run gen:sdk`) from the
 * spec's enum and the server's one table, so nothing here is copied by hand.
 *
 * Honest retry advice: a `retryable` code means the request was not applied, so any request may
 * be repeated as it is. OUTCOME_UNKNOWN (`mayHaveBeenApplied`) means it may have been: the client
 * repeats it only when it is safe to (an append with a producer id, which the cluster
 * deduplicates; reads; idempotent updates). A network failure before the request was sent
 * (refused, no route, connect timeout) is UNAVAILABLE; one after it may have been sent is
 * OUTCOME_UNKNOWN (UNAVAILABLE for GET and HEAD, which change nothing).
 */
import {
  ErrorCode,
  httpStatusOfCode,
  mayHaveBeenAppliedCodeList,
  retryableCodeList,
} from './generated/error-codes.js';

export { ErrorCode, httpStatusOfCode };

/** Codes after which the same request may succeed later without change: it was not applied. */
export const retryableCodes: ReadonlySet<string> = new Set<string>(retryableCodeList);

/** Codes after which the failed request may nevertheless have taken effect. */
export const mayHaveBeenAppliedCodes: ReadonlySet<string> = new Set<string>(mayHaveBeenAppliedCodeList);

const knownCodes: ReadonlySet<string> = new Set<string>(Object.values(ErrorCode));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value);
}

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
  /**
   * The stable code. A code this SDK does not know (a newer gateway's) is replaced by what the
   * status stands for; the server's own code stays in `problem.code`.
   */
  readonly code: ErrorCode;
  /** The HTTP status; 0 when there was no answer (WalrusNetworkError). */
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
    const known = isErrorCode(code) ? code : codeOfStatus(status);
    super(`${known}: ${detail}`, options);
    this.name = 'WalrusApiError';
    this.code = known;
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

/**
 * No HTTP answer: the gateway could not be reached (UNAVAILABLE, nothing was sent) or the
 * connection failed after the request may have been sent (OUTCOME_UNKNOWN). Status 0.
 */
export class WalrusNetworkError extends WalrusApiError {
  constructor(code: 'UNAVAILABLE' | 'OUTCOME_UNKNOWN', detail: string, options?: { cause?: unknown }) {
    super(code, 0, detail, {}, options);
    this.name = 'WalrusNetworkError';
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
  if (status === 0) return 'UNAVAILABLE';
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}
