/**
 * What the fault campaign's clients saw (the history the checker judges), and how an error is
 * classified. Every append attempt has an outcome:
 * - `ack`: acknowledged, with the offset the cluster gave it;
 * - `fail`: an error that guarantees nothing was written (refused before anything was done, or
 *   never sent);
 * - `unknown`: anything else (a timeout, a lost connection, UNAVAILABLE, DISK_FULL…): it may or
 *   may not have landed. When in doubt, an error is `unknown`.
 */
import { ErrorCode } from '../../node/protocol/error-codes.js';

export type Outcome = 'ack' | 'fail' | 'unknown';

export interface AttemptRecord {
  /** The writer: `b<n>` (binary WalrusClient), `h<n>` (HTTP gateway), `probe`. */
  readonly writer: string;
  /** Unique over the run: `<writer>-<seq>`. */
  readonly value: string;
  readonly outcome: Outcome;
  /** Set for `ack`. */
  readonly offset?: number;
  /** The error code (or message) for `fail` and `unknown`. */
  readonly error?: string;
  /** Date.now() when the attempt was sent and when its outcome arrived. */
  readonly startMs: number;
  readonly endMs: number;
}

/** One consumer observation, in the order the (single, sequential) consumer made them. */
export type ConsumerEvent =
  | {
      readonly kind: 'deliver';
      /** Records one consumerReadNext returned, in order. */
      readonly records: readonly { readonly offset: number; readonly value: string }[];
      readonly nextOffset: number;
      readonly autoCommit: boolean;
      readonly atMs: number;
    }
  | {
      /** A committed cursor the cluster reported: after an auto-commit read, a commit, or a get. */
      readonly kind: 'cursor';
      readonly offset: number;
      readonly how: 'autoCommit' | 'commit' | 'get';
      readonly atMs: number;
    }
  | {
      /** A consumer call that failed (it tells nothing certain about the cursor). */
      readonly kind: 'error';
      readonly op: 'readNext' | 'commit' | 'get';
      readonly error: string;
      readonly atMs: number;
    };

/** One consumer event as a line, for failure reports. */
export function describeConsumerEvent(e: ConsumerEvent, index: number): string {
  const at = new Date(e.atMs).toISOString().slice(11, 23);
  if (e.kind === 'cursor') return `#${index} ${at} cursor ${e.offset} (${e.how})`;
  if (e.kind === 'error') return `#${index} ${at} ${e.op} failed: ${e.error}`;
  const first = e.records[0]?.offset;
  const range = first === undefined ? 'nothing' : `[${first}, ${e.records[e.records.length - 1]!.offset}]`;
  return `#${index} ${at} read${e.autoCommit ? ' (autoCommit)' : ''} ${range} next ${e.nextOffset}`;
}

/**
 * Codes a node or the gateway answers before it does anything (NOT_LEADER, BUSY: the client's own
 * `refusedUpFront`) or that a request it cannot accept gets (validation, unknown topic, auth).
 */
export const definiteFailureCodes: ReadonlySet<string> = new Set<string>([
  ErrorCode.NOT_LEADER,
  ErrorCode.BUSY,
  ErrorCode.BAD_REQUEST,
  ErrorCode.INVALID_TOPIC_NAME,
  ErrorCode.UNKNOWN_COMMAND,
  ErrorCode.FRAME_TOO_LARGE,
  ErrorCode.RECORD_TOO_LARGE,
  ErrorCode.BATCH_TOO_LARGE,
  ErrorCode.TOPIC_NOT_FOUND,
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_FOUND,
  ErrorCode.METHOD_NOT_ALLOWED,
  ErrorCode.UNSUPPORTED_MEDIA_TYPE,
  ErrorCode.NOT_ACCEPTABLE,
]);

/**
 * A binary client's error: `fail` for a definite refusal, or a TransportError that says the
 * request never left (`sent: false`); `unknown` otherwise. A non-idempotent append is retried by
 * the client only after definite failures, so the last error speaks for every attempt.
 */
export function classifyClientError(error: unknown): { outcome: 'fail' | 'unknown'; error: string } {
  const e = error as { code?: string; message?: string; sent?: boolean; name?: string };
  const code = e.code ?? e.message ?? String(error);
  if (e.name === 'TransportError' && e.sent === false)
    return { outcome: 'fail', error: `${code} (not sent)` };
  if (e.code !== undefined && definiteFailureCodes.has(e.code)) return { outcome: 'fail', error: code };
  return { outcome: 'unknown', error: code };
}

/**
 * An HTTP answer from the gateway that is not a 201: `fail` only for a definite code in its
 * problem+json body; a 5xx without a code, a body that does not parse, or a code such as
 * UNAVAILABLE (the gateway also uses it for a lost upstream connection) is `unknown`.
 */
export function classifyHttpError(
  status: number,
  body: string,
): { outcome: 'fail' | 'unknown'; error: string } {
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  const error = `HTTP ${status} ${code ?? body.slice(0, 80)}`;
  return { outcome: code !== undefined && definiteFailureCodes.has(code) ? 'fail' : 'unknown', error };
}

/** A fetch() that threw: `fail` only when the gateway refused the connection (nothing was sent). */
export function classifyFetchError(error: unknown): { outcome: 'fail' | 'unknown'; error: string } {
  const cause = (error as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (error as { name?: string }).name ?? String(error);
  return { outcome: code === 'ECONNREFUSED' ? 'fail' : 'unknown', error: `fetch ${code}` };
}

/** A range of offsets a whole-topic read could not get, and why. */
export interface Unreadable {
  readonly from: number;
  readonly to: number;
  readonly error: string;
}
