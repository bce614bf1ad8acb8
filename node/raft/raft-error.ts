/**
 * Typed errors of the Raft core. Codes are stable strings; where a code has the same meaning as
 * one in node/protocol/error-codes.ts it has the same spelling (NOT_LEADER, BUSY, BAD_REQUEST), so
 * the cluster layer maps them without a table. The core imports nothing of ours, hence a local set.
 */

export const RaftErrorCode = {
  /** propose/transfer on a node that is not the leader; `leaderId` is a hint (0 = unknown). */
  NOT_LEADER: 'NOT_LEADER',
  /** A leader transfer is in progress: proposals are refused until it completes or times out. */
  TRANSFER_IN_PROGRESS: 'TRANSFER_IN_PROGRESS',
  /** Another configuration change is not yet applied on the leader (or the leader has not applied its first entry). */
  CONF_CHANGE_PENDING: 'CONF_CHANGE_PENDING',
  /** The configuration change does not apply to the current configuration. */
  BAD_CONF_CHANGE: 'BAD_CONF_CHANGE',
  /** Promote refused: the learner does not yet hold every committed entry. */
  LEARNER_NOT_CAUGHT_UP: 'LEARNER_NOT_CAUGHT_UP',
  /** A bounded queue is full (uncommitted proposal bytes, pending ReadIndex requests): back off and retry. */
  BUSY: 'BUSY',
  /** ReadIndex on a leader that has not committed an entry of its term yet (its commit index may lag): retry shortly. */
  READ_INDEX_NOT_READY: 'READ_INDEX_NOT_READY',
  /** A peer message that is malformed; it was ignored and no state changed. */
  BAD_REQUEST: 'BAD_REQUEST',
  /** compact() at an index that is already compacted or not yet applied. */
  BAD_COMPACT_INDEX: 'BAD_COMPACT_INDEX',
  /** RaftConfig.validate() failed. */
  INVALID_CONFIG: 'INVALID_CONFIG',
} as const;
export type RaftErrorCode = (typeof RaftErrorCode)[keyof typeof RaftErrorCode];

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  /** For NOT_LEADER: the leader this node believes in, 0 if none. */
  readonly leaderId: number;

  constructor(code: RaftErrorCode, message: string, leaderId = 0) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
    this.leaderId = leaderId;
  }
}
