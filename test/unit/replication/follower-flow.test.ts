import test from 'ava';
import { FollowerFlow, followerFlowLimits } from '../../../node/replication/index.js';

test('appends that continue what was sent go out live, bounded in flight', (t) => {
  const f = new FollowerFlow(2, 0);
  t.true(f.offer(0, 5));
  t.true(f.offer(5, 5));
  t.is(f.inFlight, 2);
  for (let i = 2; i < followerFlowLimits.inFlightCountMax; i++) t.true(f.offer(f.sentEnd, 1));
  t.false(f.offer(f.sentEnd, 1), 'beyond the bound the follower catches up from the WAL');
  t.is(f.mode, 'catchUp');
});

test('a gap resends from the follower end; a failure from what it holds durable', (t) => {
  const f = new FollowerFlow(2, 0);
  f.offer(0, 10);
  f.acked(4, 10);
  f.offer(10, 10);
  f.gap(7);
  t.is(f.sentEnd, 7);
  t.is(f.mode, 'catchUp');
  t.is(f.catchUpFrom(20), 7);
  f.sentCatchUp(7, 13);
  t.is(f.catchUpFrom(20), null, 'one catch-up message at a time');
  f.failed();
  t.is(f.sentEnd, 4, 'after a failure: resend from what the follower holds durable');
  t.is(f.catchUpFrom(20), 4);
  f.sentCatchUp(4, 16);
  f.acked(20, 20);
  t.is(f.ackedEnd, 20);
  t.is(f.mode, 'live', 'caught up with everything assigned: live again');
});

test('acknowledged ends never go back', (t) => {
  const f = new FollowerFlow(2, 0);
  f.offer(0, 10);
  f.offer(10, 10);
  f.acked(20, 20);
  f.acked(10, 20);
  t.is(f.ackedEnd, 20);
});
