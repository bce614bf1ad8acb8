/**
 * Property tests of the record frame: round trip, a buffer split at every byte decodes the same
 * (never a record before all its bytes are there), and garbage never yields a record or throws.
 */
import { crc32c } from '@node-rs/crc32';
import test from 'ava';
import fc from 'fast-check';
import { crc32cRange, crcNativeMinBytes } from '../../../node/storage-io/crc32c.js';
import { walLimits } from '../../../node/wal/limits.js';
import {
  checkRecordAt,
  decodeRecordAt,
  encodeRecordInto,
  encodedRecordSizeBytes,
  headersSizeBytes,
  recordLengthMax,
} from '../../../node/wal/record-codec.js';

const lengthMax = recordLengthMax(1024 * 1024);

const headerKey = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' });
const recordArb = fc.record({
  offset: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  timestampMs: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  syncedDelta: fc.nat({ max: 0xffff_ffff }),
  headers: fc.option(
    fc.dictionary(headerKey, fc.string({ maxLength: 40, unit: 'grapheme' }), { maxKeys: 5 }),
    {
      nil: undefined,
    },
  ),
  value: fc.uint8Array({ maxLength: 600 }),
});

type Arb = typeof recordArb extends fc.Arbitrary<infer T> ? T : never;

function encode(r: Arb): Buffer {
  const headersBytes = r.headers === undefined ? 0 : headersSizeBytes(r.headers);
  const buf = Buffer.alloc(encodedRecordSizeBytes(headersBytes, r.value.length));
  const end = encodeRecordInto(
    buf,
    0,
    r.offset,
    r.timestampMs,
    r.syncedDelta,
    r.headers,
    headersBytes,
    r.value,
  );
  if (end !== buf.length) throw new Error('size mismatch');
  return buf;
}

test('encode then decode gives the record back', (t) => {
  fc.assert(
    fc.property(recordArb, (r) => {
      const buf = encode(r);
      const decoded = decodeRecordAt(buf, 0, buf.length, lengthMax);
      if (decoded.kind !== 'record') return false;
      t.is(decoded.size, buf.length);
      t.is(decoded.record.offset, r.offset);
      t.is(decoded.record.timestampMs, r.timestampMs);
      t.is(decoded.record.syncedDelta, r.syncedDelta);
      t.deepEqual({ ...decoded.record.headers }, { ...(r.headers ?? {}) });
      t.deepEqual(Buffer.from(decoded.record.value), Buffer.from(r.value));
      return true;
    }),
    { numRuns: 300 },
  );
});

test('records packed back to back and cut at every byte decode the same, never early', (t) => {
  fc.assert(
    fc.property(fc.array(recordArb, { minLength: 1, maxLength: 4 }), (records) => {
      const parts = records.map(encode);
      const all = Buffer.concat(parts);
      for (let cut = 0; cut <= all.length; cut++) {
        const view = Buffer.from(all.subarray(0, cut));
        let pos = 0;
        let count = 0;
        for (;;) {
          const d = decodeRecordAt(view, pos, view.length, lengthMax);
          if (d.kind !== 'record') {
            if (d.kind === 'invalid') return false;
            break;
          }
          if (d.record.offset !== records[count]!.offset) return false;
          pos += d.size;
          count += 1;
        }
        let complete = 0;
        let sum = 0;
        for (const p of parts) {
          if (sum + p.length > cut) break;
          sum += p.length;
          complete += 1;
        }
        if (count !== complete) return false;
      }
      return true;
    }),
    { numRuns: 60 },
  );
  t.pass();
});

test('random garbage never decodes into a record and never throws', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 300 }), (bytes, at) => {
      const buf = Buffer.from(bytes);
      const pos = Math.min(at, buf.length);
      const d = decodeRecordAt(buf, pos, buf.length, lengthMax);
      return d.kind === 'short' || d.kind === 'invalid';
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('a flipped bit anywhere in a record makes it invalid (or short), never a different record', (t) => {
  fc.assert(
    fc.property(recordArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (r, where, bit) => {
      const buf = encode(r);
      const i = where % buf.length;
      buf[i]! ^= 1 << bit;
      const d = decodeRecordAt(buf, 0, buf.length, lengthMax);
      return d.kind !== 'record';
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('zero-filled bytes (a preallocated tail) are never a record', (t) => {
  const zeros = Buffer.alloc(4096);
  for (let pos = 0; pos < zeros.length; pos++)
    t.is(checkRecordAt(zeros, pos, zeros.length, lengthMax) <= 0, true);
});

test('header limits are enforced by the size function', (t) => {
  t.true(headersSizeBytes({ a: 'b' }) > 0);
  t.is(headersSizeBytes({ ['k'.repeat(walLimits.headerKeySizeMaxBytes + 1)]: 'v' }), -1);
  t.is(headersSizeBytes({ k: 'v'.repeat(walLimits.headerValueSizeMaxBytes + 1) }), -1);
  const many: Record<string, string> = {};
  for (let i = 0; i <= walLimits.headerCountMax; i++) many[`h${i}`] = 'x';
  t.is(headersSizeBytes(many), -1);
});

test('the JS CRC-32C used for small records equals @node-rs/crc32 at every length and offset', (t) => {
  t.true(crcNativeMinBytes > 0);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const buf = Buffer.from(bytes);
      const start = buf.length === 0 ? 0 : a % buf.length;
      const end = start + (buf.length === 0 ? 0 : b % (buf.length - start + 1));
      return crc32cRange(buf, start, end) === crc32c(buf.subarray(start, end));
    }),
    { numRuns: 2000 },
  );
  // The standard check value of CRC-32C.
  t.is(crc32cRange(Buffer.from('123456789'), 0, 9), 0xe3069283);
});
