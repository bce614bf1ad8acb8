/** The history checker the fault suite relies on finds each kind of anomaly, and passes a clean log. */
import test from 'ava';
import { checkLog } from '../helpers/log-checker.js';

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
