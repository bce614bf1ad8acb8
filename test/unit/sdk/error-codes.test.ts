/**
 * The SDK imports nothing of the server's, so its copy of the code table's advice is tied to
 * node/protocol/error-codes.ts here: the same codes as the spec and the server, the same retryable
 * set, the same may-have-been-applied set. A code added on one side only fails this test.
 */
import test from 'ava';
import { ErrorCode as NodeErrorCode, errorCodeInfo } from '../../../node/protocol/error-codes.js';
import { ErrorCode, mayHaveBeenAppliedCodes, retryableCodes, WalrusApiError } from '../../../sdk/index.js';

const nodeCodes = Object.keys(NodeErrorCode).sort();

test("the SDK's ErrorCode names exactly the server's codes", (t) => {
  t.deepEqual(Object.keys(ErrorCode).sort(), nodeCodes);
  for (const [name, value] of Object.entries(ErrorCode)) t.is(name, value);
});

test("the SDK's retryable set is the server table's", (t) => {
  const serverRetryable = nodeCodes.filter((c) => errorCodeInfo[c as NodeErrorCode].retryable);
  t.deepEqual([...retryableCodes].sort(), serverRetryable);
});

test("the SDK's may-have-been-applied set is the server table's", (t) => {
  const serverApplied = nodeCodes.filter((c) => errorCodeInfo[c as NodeErrorCode].mayHaveBeenApplied);
  t.deepEqual([...mayHaveBeenAppliedCodes].sort(), serverApplied);
  t.true(serverApplied.includes('OUTCOME_UNKNOWN'));
});

test('WalrusApiError answers retryable and mayHaveBeenApplied from its code', (t) => {
  const unknown = new WalrusApiError(ErrorCode.OUTCOME_UNKNOWN, 502, 'lost');
  t.false(unknown.retryable);
  t.true(unknown.mayHaveBeenApplied);
  const busy = new WalrusApiError(ErrorCode.BUSY, 429, 'later');
  t.true(busy.retryable);
  t.false(busy.mayHaveBeenApplied);
});
