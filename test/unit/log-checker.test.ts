/** The history checker the fault suite relies on finds each kind of anomaly, and passes a clean log. */
import test from 'ava';
import { checkConsumer, checkLog, checkRange, compareReads } from '../helpers/log-checker.js';

test('a clean history passes; an unknown outcome may or may not be there', (t) => {
  const c = checkLog(
    [
      { value: 'a', offset: 0 },
      { value: 'b', error: 'TIMEOUT' },
      { value: 'c', offset: 2 },
      { value: 'd', error: 'TIMEOUT' },
    ],
    [
      { offset: 0, value: 'a' },
      { offset: 1, value: 'b' },
      { offset: 2, value: 'c' },
    ],
  );
  t.like(c, { acknowledged: 2, unknown: 2, unknownPresent: 1 });
  t.deepEqual([c.lost, c.misplaced, c.duplicated, c.unexpected, c.holes], [[], [], [], [], []]);
});

test('lost, misplaced, duplicated and unexpected records and holes are each reported', (t) => {
  const c = checkLog(
    [
      { value: 'a', offset: 0 },
      { value: 'b', offset: 1 },
      { value: 'c', offset: 2 },
      { value: 'd', offset: 3 },
    ],
    [
      { offset: 0, value: 'a' },
      { offset: 1, value: 'c' },
      { offset: 2, value: 'c' },
      { offset: 4, value: 'zz' },
    ],
  );
  t.deepEqual(c.lost, ['b', 'd']);
  t.deepEqual(c.misplaced, []);
  t.deepEqual(c.duplicated, ['c at 1,2']);
  t.deepEqual(c.unexpected, ['zz']);
  t.deepEqual(c.holes, [3]);
  const moved = checkLog([{ value: 'a', offset: 5 }], [{ offset: 6, value: 'a' }]);
  t.deepEqual(moved.misplaced, ['a@5 found at 6']);
});

test('a definite failure must not be there; an unknown one may', (t) => {
  const c = checkLog(
    [
      { value: 'a', offset: 0 },
      { value: 'b', error: 'NOT_LEADER', definite: true },
      { value: 'c', error: 'TIMEOUT' },
      { value: 'd', error: 'BUSY', definite: true },
    ],
    [
      { offset: 0, value: 'a' },
      { offset: 1, value: 'b' },
      { offset: 2, value: 'c' },
    ],
  );
  t.like(c, { acknowledged: 1, unknown: 1, unknownPresent: 1, failed: 2 });
  t.deepEqual(c.failedPresent, ['b (NOT_LEADER) found at 1']);
  t.deepEqual(c.unexpected, []);
});

test('checkRange wants one record at every offset of [start, end), in order', (t) => {
  const ok = checkRange(
    [
      { offset: 0, value: 'a' },
      { offset: 1, value: 'b' },
    ],
    2,
  );
  t.deepEqual(ok, { missing: [], stray: [] });
  // A hole at the start and at the end: checkLog's holes (between records) see neither.
  const edges = checkRange([{ offset: 1, value: 'b' }], 3);
  t.deepEqual(edges.missing, [0, 2]);
  t.deepEqual(checkLog([], [{ offset: 1, value: 'b' }]).holes, []);
  const stray = checkRange(
    [
      { offset: 1, value: 'b' },
      { offset: 0, value: 'a' },
      { offset: 5, value: 'z' },
    ],
    2,
  );
  t.deepEqual(stray.stray, ['a@0 after offset 1', 'z@5 outside [0, 2)']);
  t.deepEqual(stray.missing, []);
});

test('compareReads names the first record where a node differs from the first one', (t) => {
  const base = [
    { offset: 0, value: 'a' },
    { offset: 1, value: 'b' },
  ];
  t.deepEqual(
    compareReads([
      { label: 'n1', records: base },
      { label: 'n2', records: [...base] },
    ]),
    [],
  );
  t.deepEqual(
    compareReads([
      { label: 'n1', records: base },
      {
        label: 'n2',
        records: [
          { offset: 0, value: 'a' },
          { offset: 1, value: 'x' },
        ],
      },
      { label: 'n3', records: [{ offset: 0, value: 'a' }] },
    ]),
    [
      'n2 differs from n1 at record 1: "x"@1 vs "b"@1 (2 vs 2 records)',
      'n3 differs from n1 at record 1: nothing vs "b"@1 (1 vs 2 records)',
    ],
  );
  t.deepEqual(compareReads([]), []);
});

test('checkConsumer: cursors never go back or past the end, deliveries match the log', (t) => {
  const log = [
    { offset: 0, value: 'a' },
    { offset: 1, value: 'b' },
    { offset: 2, value: 'c' },
  ];
  const clean = checkConsumer(
    [
      { kind: 'deliver', records: log.slice(0, 2), nextOffset: 2 },
      { kind: 'cursor', offset: 2, how: 'autoCommit' },
      // At least once: a read whose commit was lost delivers again from the cursor.
      { kind: 'deliver', records: log.slice(2), nextOffset: 3 },
      { kind: 'deliver', records: log.slice(2), nextOffset: 3 },
      { kind: 'cursor', offset: 3, how: 'commit' },
      { kind: 'cursor', offset: 3, how: 'get' },
      { kind: 'deliver', records: [], nextOffset: 3 },
    ],
    log,
    3,
  );
  t.deepEqual(clean, { backwards: [], beyondEnd: [], mismatched: [], gaps: [] });
  const bad = checkConsumer(
    [
      { kind: 'cursor', offset: 3, how: 'commit' },
      { kind: 'cursor', offset: 1, how: 'get' },
      {
        kind: 'deliver',
        records: [
          { offset: 0, value: 'a' },
          { offset: 2, value: 'zz' },
        ],
        nextOffset: 4,
      },
      { kind: 'cursor', offset: 9, how: 'autoCommit' },
    ],
    log,
    3,
  );
  t.deepEqual(bad.backwards, [
    '#1 cursor 1 (get) after 3 (commit)',
    '#2 delivered from 0, below the committed cursor 3 (commit)',
  ]);
  t.deepEqual(bad.beyondEnd, ['cursor 9 (autoCommit) past the end 3']);
  t.deepEqual(bad.mismatched, ['delivered "zz"@2, the log holds "c"']);
  t.deepEqual(bad.gaps, ['delivered 0 then 2', 'delivered up to 2, nextOffset 4']);
});

test('checkConsumer judges no cursor against an unknown end, and no delivery at an unknown offset', (t) => {
  const c = checkConsumer(
    [
      {
        kind: 'deliver',
        records: [
          { offset: 0, value: 'a' },
          { offset: 1, value: 'b' },
        ],
        nextOffset: 2,
      },
      { kind: 'cursor', offset: 2, how: 'autoCommit' },
    ],
    [{ offset: 0, value: 'a' }],
    null,
    (offset) => offset < 1,
  );
  t.deepEqual(c, { backwards: [], beyondEnd: [], mismatched: [], gaps: [] });
});
