/**
 * The one-entry topic name caches of the binary codec (topic-bytes.ts): any sequence of names,
 * repeated or not, valid or not, decodes and encodes exactly as without a cache, and a cached
 * name never lets a different (or invalid) one through.
 */
import test from 'ava';
import fc from 'fast-check';
import { decodeRequest, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { topicNameProblem } from '../../../node/protocol/topic-name.js';

/** A describeTopic request whose name bytes are `nameBytes` (bypassing the encoder's checks). */
function describeWithNameBytes(nameBytes: Buffer): Buffer {
  const valid = encodeRequest(9, { op: 'describeTopic', topic: 'x' });
  return Buffer.concat([valid.subarray(0, 8), Buffer.from([nameBytes.length]), nameBytes]);
}

const nameArb = fc.oneof(
  fc.constantFrom('orders', 'orderz', 'Orders', 'a', '.', '..', 'o.r-d_e', 'x'.repeat(200)),
  fc.string({ minLength: 0, maxLength: 8 }),
);

test('a sequence of names decodes as each name alone would, whatever was cached', (t) => {
  fc.assert(
    fc.property(fc.array(nameArb, { minLength: 1, maxLength: 20 }), (names) => {
      for (const name of names) {
        const decoded = decodeRequest(describeWithNameBytes(Buffer.from(name, 'utf8')));
        const problem = name.length === 0 ? 'empty' : topicNameProblem(name);
        if (problem === undefined) {
          if (decoded.kind !== 'request' || decoded.request.op !== 'describeTopic') return false;
          if (decoded.request.topic !== name) return false;
        } else if (decoded.kind !== 'malformed') {
          return false;
        }
      }
      return true;
    }),
  );
  t.pass();
});

test('invalid UTF-8 after a cached name of the same length is still refused', (t) => {
  t.is(decodeRequest(describeWithNameBytes(Buffer.from('ab'))).kind, 'request');
  const bad = decodeRequest(describeWithNameBytes(Buffer.from([0xc3, 0x28])));
  t.true(bad.kind === 'malformed' && /UTF-8/.test(bad.error.message));
});

test('a sequence of names encodes as each name alone would, whatever was cached', (t) => {
  fc.assert(
    fc.property(fc.array(nameArb, { minLength: 1, maxLength: 20 }), (names) => {
      for (const name of names) {
        let encoded: Buffer | undefined;
        let error: unknown;
        try {
          encoded = encodeRequest(1, { op: 'describeTopic', topic: name });
        } catch (e) {
          error = e;
        }
        if (topicNameProblem(name) === undefined) {
          if (encoded === undefined) return false;
          const decoded = decodeRequest(encoded);
          if (decoded.kind !== 'request' || decoded.request.op !== 'describeTopic') return false;
          if (decoded.request.topic !== name) return false;
        } else if (!(error instanceof WalrusError) || error.code !== ErrorCode.INVALID_TOPIC_NAME) {
          return false;
        }
      }
      return true;
    }),
  );
  t.pass();
});
