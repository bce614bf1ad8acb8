/**
 * The oracle's checks on their own: what a client may and may not be told about a cursor and about
 * records, so the simulator's verdicts can be trusted both ways (no false alarm, no missed stale read).
 */
import test from 'ava';
import { ConsumerModel, TopicModel } from './oracle.js';

const step = 16;

test('a cursor read sent after a commit was acknowledged must see it or a later one', (t) => {
  const c = new ConsumerModel(step);
  c.settle(c.write(5, 0), 5, 10);
  c.settle(c.write(9, 20), 9, 30);
  t.notThrows(() => c.check('get', 9, 40, 45, 0));
  t.throws(
    () => c.check('get', 5, 40, 45, 0),
    { message: /CursorNotStale/ },
    'the overwritten commit is stale',
  );
  t.throws(() => c.check('get', null, 40, 45, 0), { message: /CursorNotStale/ }, 'no cursor after a commit');
  t.throws(() => c.check('get', 50, 40, 45, 0), { message: /CursorNotStale/ }, 'a value nobody wrote');
});

test('reads concurrent with commits may see either value, and commits of unknown outcome stay possible', (t) => {
  const c = new ConsumerModel(step);
  c.settle(c.write(5, 0), 5, 10);
  const late = c.write(9, 20); // acknowledged at 50, after the read below was sent
  t.notThrows(() => c.check('get', 5, 25, 30, 0));
  t.notThrows(() => c.check('get', 9, 25, 30, 0));
  c.settle(late, 9, 50);
  c.write(3, 60); // timed out: it may be applied at any later time
  t.notThrows(() => c.check('get', 3, 100, 110, 0));
  t.notThrows(() => c.check('get', 9, 100, 110, 0));
});

test('an auto-commit of unknown value may move the cursor forward by one read, never back', (t) => {
  const c = new ConsumerModel(step);
  c.settle(c.write(20, 0), 20, 10);
  c.writeAuto(15);
  t.notThrows(() => c.check('get', 30, 40, 45, 0));
  t.throws(() => c.check('get', 37, 40, 45, 0), { message: /CursorNotStale/ });
  t.throws(() => c.check('get', 19, 40, 45, 0), { message: /CursorNotStale/ });
});

test('a cursor below the topic start reads as the start', (t) => {
  const c = new ConsumerModel(step);
  c.settle(c.write(12, 0), 12, 10);
  t.notThrows(() => c.check('get', 72, 40, 45, 72));
  t.throws(() => c.check('get', 73, 40, 45, 72), { message: /CursorNotStale/ });
});

test('records: an acknowledged offset keeps its value, a value has one offset, no empty read below the acknowledged end', (t) => {
  const topic = new TopicModel('t');
  topic.onAppendAck(['a', 'b'], 0, 1, 10);
  t.notThrows(() =>
    topic.onRead(
      0,
      [
        { offset: 0, value: 'a' },
        { offset: 1, value: 'b' },
      ],
      20,
      'read',
    ),
  );
  t.throws(() => topic.onRead(1, [{ offset: 1, value: 'x' }], 20, 'read'), { message: /AckedAppendStays/ });
  t.throws(() => topic.onRead(2, [{ offset: 2, value: 'a' }], 20, 'read'), { message: /AckedAppendStays/ });
  t.throws(() => topic.onRead(1, [], 20, 'read'), { message: /NoEmptyReadBelowAckedEnd/ });
  t.notThrows(() => topic.onRead(1, [], 5, 'read'), 'sent before the acknowledgement');
  t.throws(
    () => topic.onAppendAck(['c'], 1, 1, 30),
    { message: /AckedAppendStays/ },
    'two acks for one offset',
  );
});

test('TOPIC_NOT_FOUND for a topic created before the request, and never asked to be deleted, is a violation', (t) => {
  const topic = new TopicModel('t');
  topic.createdAt = 10;
  t.notThrows(() => topic.onNotFound(5, 'append'));
  t.throws(() => topic.onNotFound(20, 'append'), { message: /TopicNotLost/ });
  topic.deleteAsked = true;
  t.notThrows(() => topic.onNotFound(20, 'append'));
});
