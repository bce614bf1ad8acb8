/**
 * Which requests change state, and the OUTCOME_UNKNOWN error a caller gets when such a request
 * was sent and its answer then never came (a lost connection, a timeout). One rule for every
 * layer that sends a client request on (node/client, the node's forwarding in node/bin/peers.ts),
 * so that none of them passes a retryable UNAVAILABLE or TIMEOUT back for a request that may have
 * been applied (error-codes.ts, "Honest retry advice").
 */
import { ErrorCode, WalrusError } from './error-codes.js';
import type { Request, RequestOp } from './messages.js';

/** Ops that change state whenever they are applied (a consumerReadNext only with autoCommit). */
const stateChangingOps: ReadonlySet<RequestOp> = new Set<RequestOp>([
  'append',
  'createTopic',
  'deleteTopic',
  'configureTopic',
  'consumerCommit',
  'consumerDelete',
  'removeNode',
  'handOff',
  'transferLeader',
  'nodeStopping',
]);

/** True when applying the request changes state, so a lost answer leaves its outcome unknown. */
export function changesState(request: Request): boolean {
  return stateChangingOps.has(request.op) || (request.op === 'consumerReadNext' && request.autoCommit);
}

/**
 * True when the request is safe to repeat after an unknown outcome: it changes nothing, or the
 * server deduplicates it (an append with producerId + producerSeq answers a repeat with the
 * original offsets). A consumerReadNext with autoCommit is not: a repeat skips a batch.
 */
export function isIdempotent(request: Request): boolean {
  if (request.op === 'append') return request.producerId !== undefined && request.producerSeq !== undefined;
  if (request.op === 'consumerReadNext') return !request.autoCommit;
  return true;
}

/** OUTCOME_UNKNOWN for `op`, keeping the failure that made it so as the cause. */
export function outcomeUnknownError(op: RequestOp, failure: WalrusError): WalrusError {
  if (failure.code === ErrorCode.OUTCOME_UNKNOWN) return failure;
  return new WalrusError(
    ErrorCode.OUTCOME_UNKNOWN,
    `${op} was sent but ${failure.message}; it may have been applied: repeat it only if it is idempotent`,
    { cause: failure },
  );
}

/**
 * Refusals of an append that one request's own records can cause (a record or the batch too
 * large, a bad header, a malformed body): nothing was written. Where several requests' records
 * were joined into one append (the gateway's append-coalescer.ts, the node's append-join.ts), a
 * joined append refused with one of these is sent again request by request, so that only the
 * culprit fails.
 */
export const recordRefusalCodes: ReadonlySet<string> = new Set<string>([
  ErrorCode.BAD_REQUEST,
  ErrorCode.FRAME_TOO_LARGE,
  ErrorCode.RECORD_TOO_LARGE,
  ErrorCode.BATCH_TOO_LARGE,
  ErrorCode.HEADERS_TOO_LARGE,
]);
