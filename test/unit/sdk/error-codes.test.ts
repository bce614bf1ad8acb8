/**
 * The SDK imports nothing of the server's, so its codes and their advice are generated
 * (sdk/generated/error-codes.ts, `npm run gen:sdk`) from openapi.yaml's ErrorCode enum and the one
 * table, node/protocol/error-codes.ts. Here the three are tied together: the committed file is what
 * the generator writes today, and the spec, the SDK and the server name the same codes with the
 * same status, retryable and may-have-been-applied advice. A code added on one side only fails.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import {
  renderSdkErrorCodes,
  sdkErrorCodesPath,
  specErrorCodes,
} from '../../../infra/codegen/sdk-error-codes.js';
import { ErrorCode as NodeErrorCode, errorCodeInfo } from '../../../node/protocol/error-codes.js';
import {
  ErrorCode,
  httpStatusOfCode,
  mayHaveBeenAppliedCodes,
  retryableCodes,
  WalrusApiError,
  WalrusNetworkError,
} from '../../../sdk/index.js';
import { repoRoot } from '../../helpers/spec-check.js';

const spec = fs.readFileSync(path.join(repoRoot, 'openapi.yaml'), 'utf8');
const nodeCodes = Object.keys(NodeErrorCode).sort();

test('sdk/generated/error-codes.ts is what npm run gen:sdk writes (not stale, not hand-edited)', (t) => {
  t.is(fs.readFileSync(path.join(repoRoot, sdkErrorCodesPath), 'utf8'), renderSdkErrorCodes(spec));
  const script = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts[
    'gen:sdk'
  ] as string;
  t.regex(script, /infra\/codegen\/sdk-error-codes\.js/, 'gen:sdk runs the generator');
});

test('the spec, the SDK and the server name exactly the same codes', (t) => {
  t.deepEqual([...specErrorCodes(spec)].sort(), nodeCodes);
  t.deepEqual(Object.keys(ErrorCode).sort(), nodeCodes);
  for (const [name, value] of Object.entries(ErrorCode)) t.is(name, value);
});

test('the generator refuses a spec whose enum differs from the table', (t) => {
  const extra = spec.replace(/(\n\s+- INTERNAL\n)/, '$1        - MADE_UP\n');
  t.not(extra, spec, 'the test edits the enum');
  t.throws(() => renderSdkErrorCodes(extra), { message: /unknown to the table \[MADE_UP\]/ });
});

test("the SDK's advice is the server table's: status, retryable, may-have-been-applied", (t) => {
  const serverRetryable = nodeCodes.filter((c) => errorCodeInfo[c as NodeErrorCode].retryable);
  t.deepEqual([...retryableCodes].sort(), serverRetryable);
  const serverApplied = nodeCodes.filter((c) => errorCodeInfo[c as NodeErrorCode].mayHaveBeenApplied);
  t.deepEqual([...mayHaveBeenAppliedCodes].sort(), serverApplied);
  t.true(serverApplied.includes('OUTCOME_UNKNOWN'));
  for (const c of nodeCodes)
    t.is(
      httpStatusOfCode[c as keyof typeof httpStatusOfCode],
      errorCodeInfo[c as NodeErrorCode].httpStatus,
      c,
    );
});

test('WalrusApiError: a typed code with its advice; an unknown code falls back on the status', (t) => {
  const unknown = new WalrusApiError(ErrorCode.OUTCOME_UNKNOWN, 502, 'lost');
  t.false(unknown.retryable);
  t.true(unknown.mayHaveBeenApplied);
  const busy = new WalrusApiError(ErrorCode.BUSY, 429, 'later');
  t.true(busy.retryable);
  t.false(busy.mayHaveBeenApplied);
  t.is(busy.status, 429);
  const newer = new WalrusApiError('SOMETHING_NEWER', 503, 'from a newer gateway', {
    code: 'SOMETHING_NEWER',
  });
  t.is(newer.code, 'UNAVAILABLE');
  t.is(newer.problem.code, 'SOMETHING_NEWER');
  t.true(newer.retryable);
  const network = new WalrusNetworkError('OUTCOME_UNKNOWN', 'connection reset');
  t.true(network instanceof WalrusApiError);
  t.is(network.status, 0);
  t.true(network.mayHaveBeenApplied);
  t.is(network.name, 'WalrusNetworkError');
});
