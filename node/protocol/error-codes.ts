/**
 * The one table of stable error codes, shared by the binary protocol, the Walrus text protocol's
 * `ERR` replies, the gateway's problem+json bodies and (through openapi.yaml) the SDK.
 *
 * Callers match on `code`, never on message text. A code, once shipped, keeps its meaning forever;
 * new codes may be added. `httpStatus` is the one mapping to HTTP used by the gateway;
 * `retryable` tells clients whether the same request may succeed later without change.
 */

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
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorCodeInfo {
  /** HTTP status the gateway answers with. */
  readonly httpStatus: number;
  /** True when the same request may succeed later without change (after a refresh or a wait). */
  readonly retryable: boolean;
  /** One line for docs and problem+json `title`. */
  readonly title: string;
}

export const errorCodeInfo: Readonly<Record<ErrorCode, ErrorCodeInfo>> = {
  BAD_REQUEST: { httpStatus: 400, retryable: false, title: 'The request is malformed' },
  INVALID_TOPIC_NAME: { httpStatus: 400, retryable: false, title: 'The topic name is not allowed' },
  UNKNOWN_COMMAND: { httpStatus: 400, retryable: false, title: 'The command or operation is not known' },
  FRAME_TOO_LARGE: { httpStatus: 413, retryable: false, title: 'The frame exceeds the frame size limit' },
  RECORD_TOO_LARGE: { httpStatus: 413, retryable: false, title: 'A record exceeds the record size limit' },
  BATCH_TOO_LARGE: { httpStatus: 413, retryable: false, title: 'The batch exceeds the batch limits' },
  TOPIC_NOT_FOUND: { httpStatus: 404, retryable: false, title: 'The topic does not exist' },
  TOPIC_EXISTS: { httpStatus: 409, retryable: false, title: 'The topic exists with other settings' },
  CONSUMER_NOT_FOUND: { httpStatus: 404, retryable: false, title: 'The consumer does not exist' },
  OFFSET_OUT_OF_RANGE: { httpStatus: 416, retryable: false, title: 'The offset is outside the stored range' },
  OFFSET_MISMATCH: { httpStatus: 412, retryable: false, title: 'The expected next offset does not match' },
  SEQUENCE_MISMATCH: { httpStatus: 409, retryable: false, title: 'The producer sequence is out of order' },
  NOT_LEADER: { httpStatus: 503, retryable: true, title: 'This node does not lead the target' },
  FENCED: { httpStatus: 409, retryable: true, title: 'The writer was fenced by a newer epoch' },
  UNAVAILABLE: { httpStatus: 503, retryable: true, title: 'The service is temporarily unavailable' },
  TIMEOUT: { httpStatus: 504, retryable: true, title: 'The operation timed out' },
  BUSY: { httpStatus: 429, retryable: true, title: 'A limit was reached; retry later' },
  DISK_FULL: { httpStatus: 507, retryable: true, title: 'The storage device is full' },
  CORRUPT_RECORD: { httpStatus: 500, retryable: false, title: 'A stored record failed its checksum' },
  DATA_LOST: {
    httpStatus: 500,
    retryable: false,
    title: 'The metadata lists records whose data the node that holds them has lost',
  },
  UNAUTHENTICATED: { httpStatus: 401, retryable: false, title: 'Authentication is required' },
  IDENTITY_MISMATCH: {
    httpStatus: 409,
    retryable: false,
    title: 'The node identity differs from the one the cluster records',
  },
  FORBIDDEN: { httpStatus: 403, retryable: false, title: 'The credentials do not allow this' },
  NOT_FOUND: { httpStatus: 404, retryable: false, title: 'No such resource' },
  METHOD_NOT_ALLOWED: { httpStatus: 405, retryable: false, title: 'The method is not allowed here' },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, retryable: false, title: 'The content type is not supported' },
  NOT_ACCEPTABLE: { httpStatus: 406, retryable: false, title: 'No acceptable representation' },
  CONFLICT: { httpStatus: 409, retryable: false, title: 'The request conflicts with the current state' },
  TRANSFER_IN_PROGRESS: { httpStatus: 503, retryable: true, title: 'A Raft leader transfer is in progress' },
  CONF_CHANGE_PENDING: {
    httpStatus: 503,
    retryable: true,
    title: 'Another membership change is not committed yet',
  },
  BAD_CONF_CHANGE: {
    httpStatus: 400,
    retryable: false,
    title: 'The membership change does not apply to the current configuration',
  },
  LEARNER_NOT_CAUGHT_UP: {
    httpStatus: 503,
    retryable: true,
    title: 'The learner does not hold every committed entry yet',
  },
  BAD_COMPACT_INDEX: {
    httpStatus: 500,
    retryable: false,
    title: 'The Raft log cannot be compacted at that index',
  },
  INVALID_CONFIG: { httpStatus: 400, retryable: false, title: 'The configuration is invalid' },
  READ_INDEX_NOT_READY: {
    httpStatus: 503,
    retryable: true,
    title: 'A new Raft leader cannot confirm reads until it commits an entry of its term',
  },
  INTERNAL: { httpStatus: 500, retryable: false, title: 'An internal error occurred' },
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
}
