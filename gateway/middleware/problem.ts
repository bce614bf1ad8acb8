/**
 * RFC 9457 problem details: the one error body of the gateway and its one `onError` handler.
 * Handlers throw WalrusError (or let upstream errors through); only this file formats errors, and
 * the status always comes from errorCodeInfo, the shared code → status table. Every problem says
 * whether a retry is safe (`retryable`, with Retry-After) and whether the request may have been
 * applied (`mayHaveBeenApplied`: OUTCOME_UNKNOWN, 502, no Retry-After).
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ErrorCode, errorCodeInfo, isErrorCode, WalrusError } from '../../node/protocol/error-codes.js';

export const problemContentType = 'application/problem+json';
export const problemTypeBase = 'https://walrus-ts.dev/problems/';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode;
  /** True when the same request may succeed later without change; then nothing was applied. */
  readonly retryable: boolean;
  /** True when the request may have taken effect although it failed (OUTCOME_UNKNOWN). */
  readonly mayHaveBeenApplied: boolean;
  readonly detail?: string;
  readonly instance?: string;
  readonly [extension: string]: unknown;
}

/** Extension members a handler may attach to an error (e.g. startOffset with OFFSET_OUT_OF_RANGE). */
export class ProblemError extends WalrusError {
  readonly extensions: Readonly<Record<string, unknown>>;
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown>, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.extensions = extensions;
  }
}

export function problemOf(code: ErrorCode, detail: string, instance?: string, extensions?: object): Problem {
  const info = errorCodeInfo[code];
  return {
    type: problemTypeBase + code,
    title: info.title,
    status: info.httpStatus,
    code,
    retryable: info.retryable,
    mayHaveBeenApplied: info.mayHaveBeenApplied,
    detail,
    ...(instance === undefined ? {} : { instance }),
    ...extensions,
  };
}

/** Turns anything thrown into a problem; unknown errors become INTERNAL without leaking their text. */
export function problemFromError(error: unknown, instance?: string): Problem {
  if (error instanceof ProblemError) return problemOf(error.code, error.message, instance, error.extensions);
  if (
    error instanceof WalrusError ||
    (error instanceof Error && isErrorCode((error as { code?: unknown }).code))
  ) {
    const code = (error as WalrusError).code;
    return problemOf(code, error.message, instance);
  }
  if (error instanceof HTTPException) {
    const code = error.status === 413 ? ErrorCode.BATCH_TOO_LARGE : ErrorCode.BAD_REQUEST;
    return problemOf(code, error.message || errorCodeInfo[code].title, instance);
  }
  return problemOf(ErrorCode.INTERNAL, 'an internal error occurred', instance);
}

export function problemResponse(problem: Problem, extraHeaders?: Record<string, string>): Response {
  const headers: Record<string, string> = {
    'content-type': problemContentType,
    'x-content-type-options': 'nosniff',
    ...extraHeaders,
  };
  if (errorCodeInfo[problem.code].retryable) headers['retry-after'] = '1';
  return new Response(JSON.stringify(problem), { status: problem.status, headers });
}

/** The app's onError. `log` sees INTERNAL errors with their cause (never sent to the client). */
export function makeErrorHandler(log: (error: unknown) => void) {
  return (error: unknown, c: Context): Response => {
    const problem = problemFromError(error, c.req.path);
    if (problem.code === ErrorCode.INTERNAL) log(error);
    const response = problemResponse(problem);
    for (const [name, value] of c.res.headers) {
      if (name.startsWith('access-control-') || name === 'vary') response.headers.set(name, value);
    }
    return response;
  };
}
