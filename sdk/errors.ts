/**
 * The SDK's one error class. Every failure of an API call is a WalrusApiError carrying the stable
 * `code` of the problem+json answer (the same codes as the cluster's binary protocol), the HTTP
 * `status` and the server's `detail`. Network failures are `UNAVAILABLE` with status 0.
 */

/** Codes after which the same request may succeed later without change (mirrors the server's table). */
export const retryableCodes: ReadonlySet<string> = new Set([
  'NOT_LEADER',
  'FENCED',
  'UNAVAILABLE',
  'TIMEOUT',
  'BUSY',
  'DISK_FULL',
]);

export interface ProblemBody {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly code?: string;
  readonly detail?: string;
  readonly instance?: string;
  readonly [extension: string]: unknown;
}

export class WalrusApiError extends Error {
  readonly code: string;
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

  get retryable(): boolean {
    return retryableCodes.has(this.code);
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
  const code = typeof problem.code === 'string' ? problem.code : statusCode(res.status);
  return new WalrusApiError(code, res.status, problem.detail ?? res.statusText, problem);
}

function statusCode(status: number): string {
  if (status === 429) return 'BUSY';
  if (status === 503 || status === 502) return 'UNAVAILABLE';
  if (status === 504) return 'TIMEOUT';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}
