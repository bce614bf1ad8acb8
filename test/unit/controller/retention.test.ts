/**
 * expiredSegments (node/controller/retention.ts), pure: by time and by bytes, only a leading run,
 * never the active segment, empty sealed segments, segments sealed before sizes and times were
 * logged; and fast-check properties over arbitrary topics (always a prefix of the sealed ids, and
 * what it keeps is within the limits).
 */
import test from 'ava';
import fc from 'fast-check';
import type { Retention, SegmentMeta, TopicMeta } from '../../../node/metadata/metadata-state.js';
import { expiredSegments } from '../../../node/controller/retention.js';

const now = 1_000_000;

interface Sealed {
  readonly count: number;
  readonly sizeBytes?: number;
  readonly lastTimestampMs?: number | null;
}

/** A topic with the given sealed segments (from offset 0) and an active one after them. */
function topicOf(retention: Partial<Retention>, sealed: readonly Sealed[]): TopicMeta {
  const segments: SegmentMeta[] = [];
  let base = 0;
  sealed.forEach((s, i) => {
    const segment: SegmentMeta = { id: i + 1, baseOffset: base, endOffset: base + s.count, leaderNodeId: 1 };
    if (s.sizeBytes !== undefined) segment.sizeBytes = s.sizeBytes;
    if (s.lastTimestampMs !== undefined) segment.lastTimestampMs = s.lastTimestampMs;
    segments.push(segment);
    base += s.count;
  });
  segments.push({ id: sealed.length + 1, baseOffset: base, endOffset: null, leaderNodeId: 1 });
  return {
    name: 't',
    retention: { retentionMs: null, retentionBytes: null, ...retention },
    createdAtMs: 0,
    segments,
    cursors: new Map(),
    producers: [],
    replicationFactor: null,
  };
}

const seg = (lastTimestampMs: number | null, sizeBytes = 100, count = 2): Sealed => ({
  count,
  sizeBytes,
  lastTimestampMs,
});

test('no retention: nothing expires', (t) => {
  t.deepEqual(expiredSegments(topicOf({}, [seg(0), seg(0)]), now), []);
});

test('by time: the leading segments whose newest record is older than retentionMs', (t) => {
  const topic = topicOf({ retentionMs: 1000 }, [
    seg(now - 5000),
    seg(now - 1001),
    seg(now - 1000),
    seg(now - 5000),
  ]);
  t.deepEqual(expiredSegments(topic, now), [1, 2]);
  t.deepEqual(expiredSegments(topic, now + 1), [1, 2, 3, 4]);
});

test('only a leading run goes: an old segment behind a young one stays', (t) => {
  const topic = topicOf({ retentionMs: 1000 }, [seg(now), seg(now - 5000)]);
  t.deepEqual(expiredSegments(topic, now), []);
});

test('never the active segment, however old the topic', (t) => {
  const topic = topicOf({ retentionMs: 1, retentionBytes: 1 }, [seg(0), seg(0)]);
  t.deepEqual(expiredSegments(topic, now), [1, 2]);
  t.deepEqual(expiredSegments(topicOf({ retentionMs: 1, retentionBytes: 1 }, []), now), []);
});

test('by bytes: the oldest sealed segments until the sealed bytes fit', (t) => {
  const topic = topicOf({ retentionBytes: 250 }, [
    seg(now, 100),
    seg(now, 100),
    seg(now, 100),
    seg(now, 100),
  ]);
  t.deepEqual(expiredSegments(topic, now), [1, 2]);
  t.deepEqual(expiredSegments(topicOf({ retentionBytes: 400 }, [seg(now, 100), seg(now, 300)]), now), []);
  t.deepEqual(expiredSegments(topicOf({ retentionBytes: 399 }, [seg(now, 100), seg(now, 300)]), now), [1]);
});

test('time and bytes together: a segment goes when either says so, still as a leading run', (t) => {
  const topic = topicOf({ retentionMs: 1000, retentionBytes: 150 }, [
    seg(now - 5000, 10),
    seg(now, 100),
    seg(now, 100),
  ]);
  t.deepEqual(expiredSegments(topic, now), [1, 2]);
});

test('empty sealed segments expire by time whatever their time, and never block a run', (t) => {
  const empty: Sealed = { count: 0, sizeBytes: 0, lastTimestampMs: null };
  t.deepEqual(
    expiredSegments(topicOf({ retentionMs: 1000 }, [empty, seg(now - 5000), empty, seg(now)]), now),
    [1, 2, 3],
  );
  // Legacy empty segments (nothing logged) too.
  t.deepEqual(expiredSegments(topicOf({ retentionMs: 1000 }, [{ count: 0 }, seg(now)]), now), [1]);
});

test('legacy segments (no size or time logged) never expire by time and count 0 bytes', (t) => {
  const legacy: Sealed = { count: 5 };
  t.deepEqual(expiredSegments(topicOf({ retentionMs: 1 }, [legacy, seg(0)]), now), []);
  // By bytes they go when the logged bytes behind them are too many: they count nothing themselves.
  t.deepEqual(expiredSegments(topicOf({ retentionBytes: 50 }, [legacy, seg(now, 100)]), now), [1, 2]);
  t.deepEqual(expiredSegments(topicOf({ retentionBytes: 100 }, [legacy, seg(now, 100)]), now), []);
});

const arbSealed: fc.Arbitrary<Sealed> = fc.oneof(
  fc.record({
    count: fc.nat(5),
    sizeBytes: fc.nat(1000),
    lastTimestampMs: fc.option(fc.integer({ min: 0, max: now }), { nil: null }),
  }),
  fc.record({ count: fc.nat(5) }),
);
const arbRetention = fc.record({
  retentionMs: fc.option(fc.integer({ min: 1, max: now }), { nil: null }),
  retentionBytes: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: null }),
});

test('property: always a prefix of the sealed ids, and the rest fits the byte limit', (t) => {
  fc.assert(
    fc.property(
      arbRetention,
      fc.array(arbSealed, { maxLength: 12 }),
      fc.integer({ min: 0, max: 2 * now }),
      (retention, sealed, at) => {
        const topic = topicOf(retention, sealed);
        const expired = expiredSegments(topic, at);
        const sealedIds = topic.segments.filter((s) => s.endOffset !== null).map((s) => s.id);
        t.deepEqual(expired, sealedIds.slice(0, expired.length));
        const kept = topic.segments.slice(expired.length).filter((s) => s.endOffset !== null);
        const keptBytes = kept.reduce((sum, s) => sum + (s.sizeBytes ?? 0), 0);
        if (retention.retentionBytes !== null) t.true(keptBytes <= retention.retentionBytes);
        // The first kept sealed segment is kept for a reason: within both limits.
        const first = kept[0];
        if (first !== undefined && retention.retentionMs !== null && first.endOffset !== first.baseOffset)
          t.false(
            typeof first.lastTimestampMs === 'number' && first.lastTimestampMs < at - retention.retentionMs,
          );
      },
    ),
  );
});

test('property: expiring is idempotent (what remains expires nothing more)', (t) => {
  fc.assert(
    fc.property(arbRetention, fc.array(arbSealed, { maxLength: 12 }), (retention, sealed) => {
      const topic = topicOf(retention, sealed);
      const expired = expiredSegments(topic, now);
      const rest: TopicMeta = { ...topic, segments: topic.segments.slice(expired.length) };
      t.deepEqual(expiredSegments(rest, now), []);
    }),
  );
});
