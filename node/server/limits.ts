/**
 * Limits of the client request path (node/server), each with its reason. Hitting one has a
 * defined answer, never growth: an append past a join's bounds goes in the next join, or alone.
 */
import assert from 'node:assert/strict';
import { protocolLimits } from '../protocol/limits.js';

export const serverLimits = {
  /**
   * Records in one joined append (append-join.ts): the plain appends one connection sends in one
   * read chunk go to the appender as one batch of at most this many records. A chunk of 64 KiB
   * holds ~400 appends of 128 bytes; beyond this a new join starts.
   */
  joinedAppendRecordCountMax: 1024,
  /** Record bytes (values and header names and values) in one joined append. */
  joinedAppendSizeMaxBytes: 1024 * 1024,
} as const;

// A joined append is one append like any other: it must fit a batch, and a frame if it is forwarded
// (a reroute after NOT_LEADER sends it to the new leader whole).
assert(serverLimits.joinedAppendRecordCountMax <= protocolLimits.batchRecordCountMax);
assert(serverLimits.joinedAppendSizeMaxBytes <= protocolLimits.batchSizeMaxBytes);
assert(serverLimits.joinedAppendSizeMaxBytes * 2 <= protocolLimits.frameSizeMaxBytes);
