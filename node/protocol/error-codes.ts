/**
 * The one table of stable error codes, shared by the binary protocol, the Walrus text protocol's
 * `ERR` replies, the gateway's problem+json bodies and (through openapi.yaml) the SDK.
 *
 * Callers match on `code`, never on message text. A code, once shipped, keeps its meaning forever;
 * new codes may be added. `httpStatus` is the one mapping to HTTP used by the gateway;
 * `retryable` tells clients whether the same request may succeed later without change, and
 * `mayHaveBeenApplied` whether the failed request may nevertheless have taken effect.
 *
 * Honest retry advice (Kafka's model): a code that is `retryable` always means the request was
 * NOT applied, so repeating it cannot duplicate anything. A failure after which the outcome is
 * unknown (the request was sent and the connection then failed, or its replication quorum wait ran
 * out) is OUTCOME_UNKNOWN: never advertised as retryable, `mayHaveBeenApplied`. Clients repeat such
 * a request only when it is idempotent (an append with a producer id and sequence, which the
 * segment leader deduplicates; a read), never blindly.
 */

import assert from 'node:assert';

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
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorCodeInfo {
  /** HTTP status the gateway answers with. */
  readonly httpStatus: number;
  /**
   * True when the same request may succeed later without change (after a refresh or a wait).
   * Implies `!mayHaveBeenApplied`: a retry of a retryable error cannot duplicate anything.
   */
  readonly retryable: boolean;
  /**
   * True when the request may have taken effect although it failed (OUTCOME_UNKNOWN, INTERNAL):
   * repeat it only if it is idempotent (an append with producerId + producerSeq, a read).
   */
  readonly mayHaveBeenApplied: boolean;
  /** One line for docs and problem+json `title`. */
  readonly title: string;
}

export const errorCodeInfo: Readonly<Record<ErrorCode, ErrorCodeInfo>> = {
  BAD_REQUEST: {
    httpStatus: 400,
    retryable: false,
    title: 'The request is malformed',
    mayHaveBeenApplied: false,
  },
  INVALID_TOPIC_NAME: {
    httpStatus: 400,
    retryable: false,
    title: 'The topic name is not allowed',
    mayHaveBeenApplied: false,
  },
  UNKNOWN_COMMAND: {
    httpStatus: 400,
    retryable: false,
    title: 'The command or operation is not known',
    mayHaveBeenApplied: false,
  },
  FRAME_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    title: 'The frame exceeds the frame size limit',
    mayHaveBeenApplied: false,
  },
  RECORD_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    title: 'A record exceeds the record size limit',
    mayHaveBeenApplied: false,
  },
  BATCH_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    title: 'The batch exceeds the batch limits',
    mayHaveBeenApplied: false,
  },
  TOPIC_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    title: 'The topic does not exist',
    mayHaveBeenApplied: false,
  },
  TOPIC_EXISTS: {
    httpStatus: 409,
    retryable: false,
    title: 'The topic exists with other settings',
    mayHaveBeenApplied: false,
  },
  CONSUMER_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    title: 'The consumer does not exist',
    mayHaveBeenApplied: false,
  },
  OFFSET_OUT_OF_RANGE: {
    httpStatus: 416,
    retryable: false,
    title: 'The offset is outside the stored range',
    mayHaveBeenApplied: false,
  },
  OFFSET_MISMATCH: {
    httpStatus: 412,
    retryable: false,
    title: 'The expected next offset does not match',
    mayHaveBeenApplied: false,
  },
  SEQUENCE_MISMATCH: {
    httpStatus: 409,
    retryable: false,
    title: 'The producer sequence is out of order',
    mayHaveBeenApplied: false,
  },
  NOT_LEADER: {
    httpStatus: 503,
    retryable: true,
    title: 'This node does not lead the target',
    mayHaveBeenApplied: false,
  },
  FENCED: {
    httpStatus: 409,
    retryable: true,
    title: 'The writer was fenced by a newer epoch',
    mayHaveBeenApplied: false,
  },
  UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    title: 'The service is temporarily unavailable',
    mayHaveBeenApplied: false,
  },
  TIMEOUT: { httpStatus: 504, retryable: true, title: 'The operation timed out', mayHaveBeenApplied: false },
  OUTCOME_UNKNOWN: {
    httpStatus: 502,
    retryable: false,
    title:
      'The request was sent but its outcome is unknown: it may have been applied; repeat it only if it is idempotent',
    mayHaveBeenApplied: true,
  },
  BUSY: {
    httpStatus: 429,
    retryable: true,
    title: 'A limit was reached; retry later',
    mayHaveBeenApplied: false,
  },
  DISK_FULL: {
    httpStatus: 507,
    retryable: true,
    title: 'The storage device is full',
    mayHaveBeenApplied: false,
  },
  CORRUPT_RECORD: {
    httpStatus: 500,
    retryable: false,
    title: 'A stored record failed its checksum',
    mayHaveBeenApplied: false,
  },
  DATA_LOST: {
    httpStatus: 500,
    retryable: false,
    title: 'The metadata lists records whose data the node that holds them has lost',
    mayHaveBeenApplied: false,
  },
  UNAUTHENTICATED: {
    httpStatus: 401,
    retryable: false,
    title: 'Authentication is required',
    mayHaveBeenApplied: false,
  },
  IDENTITY_MISMATCH: {
    httpStatus: 409,
    retryable: false,
    title: 'The node identity differs from the one the cluster records',
    mayHaveBeenApplied: false,
  },
  FORBIDDEN: {
    httpStatus: 403,
    retryable: false,
    title: 'The credentials do not allow this',
    mayHaveBeenApplied: false,
  },
  NOT_FOUND: { httpStatus: 404, retryable: false, title: 'No such resource', mayHaveBeenApplied: false },
  METHOD_NOT_ALLOWED: {
    httpStatus: 405,
    retryable: false,
    title: 'The method is not allowed here',
    mayHaveBeenApplied: false,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    httpStatus: 415,
    retryable: false,
    title: 'The content type is not supported',
    mayHaveBeenApplied: false,
  },
  NOT_ACCEPTABLE: {
    httpStatus: 406,
    retryable: false,
    title: 'No acceptable representation',
    mayHaveBeenApplied: false,
  },
  CONFLICT: {
    httpStatus: 409,
    retryable: false,
    title: 'The request conflicts with the current state',
    mayHaveBeenApplied: false,
  },
  TRANSFER_IN_PROGRESS: {
    httpStatus: 503,
    retryable: true,
    title: 'A Raft leader transfer is in progress',
    mayHaveBeenApplied: false,
  },
  CONF_CHANGE_PENDING: {
    httpStatus: 503,
    retryable: true,
    title: 'Another membership change is not committed yet',
    mayHaveBeenApplied: false,
  },
  BAD_CONF_CHANGE: {
    httpStatus: 400,
    retryable: false,
    title: 'The membership change does not apply to the current configuration',
    mayHaveBeenApplied: false,
  },
  LEARNER_NOT_CAUGHT_UP: {
    httpStatus: 503,
    retryable: true,
    title: 'The learner does not hold every committed entry yet',
    mayHaveBeenApplied: false,
  },
  BAD_COMPACT_INDEX: {
    httpStatus: 500,
    retryable: false,
    title: 'The Raft log cannot be compacted at that index',
    mayHaveBeenApplied: false,
  },
  INVALID_CONFIG: {
    httpStatus: 400,
    retryable: false,
    title: 'The configuration is invalid',
    mayHaveBeenApplied: false,
  },
  READ_INDEX_NOT_READY: {
    httpStatus: 503,
    retryable: true,
    title: 'A new Raft leader cannot confirm reads until it commits an entry of its term',
    mayHaveBeenApplied: false,
  },
  HEADERS_TOO_LARGE: {
    httpStatus: 431,
    retryable: false,
    title: 'The request headers are too large or too many',
    mayHaveBeenApplied: false,
  },
  REQUEST_TIMEOUT: {
    httpStatus: 408,
    retryable: false,
    title: 'The request did not arrive whole in time',
    mayHaveBeenApplied: false,
  },
  STREAM_CLOSED: {
    httpStatus: 409,
    retryable: false,
    title: 'The stream (topic) is closed: it takes no more appends',
    mayHaveBeenApplied: false,
  },
  PRODUCER_FENCED: {
    httpStatus: 403,
    retryable: false,
    title: 'A newer epoch of this producer fenced this one',
    mayHaveBeenApplied: false,
  },
  STREAM_GONE: {
    httpStatus: 410,
    retryable: false,
    title: 'The stream was deleted; its forks still read from it, so its path cannot be reused yet',
    mayHaveBeenApplied: false,
  },
  INTERNAL: {
    httpStatus: 500,
    retryable: false,
    title: 'An internal error occurred',
    mayHaveBeenApplied: true,
  },
};

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCodeInfo, value);
}

/** Where the current leader can be reached, sent with NOT_LEADER when known. */
export interface LeaderHint {
  readonly nodeId: number;
  /** host:port of the leader's client port. */
  readonly clientAddr: string;
}

/**
 * The error every layer throws for an operating error with a stable code.
 * Programmer errors are assertions and crash instead.
 */
export class WalrusError extends Error {
  readonly code: ErrorCode;
  readonly leaderHint: LeaderHint | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; leaderHint?: LeaderHint }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WalrusError';
    this.code = code;
    this.leaderHint = options?.leaderHint;
  }

  get retryable(): boolean {
    return errorCodeInfo[this.code].retryable;
  }

  /** True when the failed request may nevertheless have taken effect (see ErrorCodeInfo). */
  get mayHaveBeenApplied(): boolean {
    return errorCodeInfo[this.code].mayHaveBeenApplied;
  }
}

// A code that invites a blind retry must guarantee that nothing was applied.
for (const [code, info] of Object.entries(errorCodeInfo)) {
  assert(!(info.retryable && info.mayHaveBeenApplied), `${code}: retryable codes must not have been applied`);
}
