import test from 'ava';
import fc from 'fast-check';
import { ackQuorum, fenceQuorum, highWatermark } from '../../../node/replication/index.js';

test('a majority acknowledges; fencing needs cohort - Qa + 1 answers', (t) => {
  t.deepEqual([1, 2, 3, 4, 5].map(ackQuorum), [1, 2, 2, 3, 3]);
  t.deepEqual([1, 2, 3, 4, 5].map(fenceQuorum), [1, 1, 2, 2, 3]);
});

test('every acknowledgement quorum meets every set of fenced answers (S6)', (t) => {
  for (let n = 1; n <= 7; n++) t.true(ackQuorum(n) + fenceQuorum(n) > n, `n=${n}`);
});

test('the high watermark is the end a majority holds', (t) => {
  t.is(highWatermark([10, 7, 3], 3, 0), 7);
  t.is(highWatermark([10], 3, 0), 0, 'one report of three is no quorum');
  t.is(highWatermark([10, 2], 3, 5), 5, 'never below the base');
  t.is(highWatermark([4], 1, 0), 4);
});

test('the high watermark never exceeds what Qa replicas hold (S4)', (t) => {
  fc.assert(
    fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 7 }), (ends) => {
      const n = ends.length;
      const hw = highWatermark(ends, n, 0);
      return ends.filter((e) => e >= hw).length >= ackQuorum(n) || hw === 0;
    }),
  );
  t.pass();
});
