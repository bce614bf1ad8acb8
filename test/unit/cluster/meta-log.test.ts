import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { MetaLog, MetaLogError } from '../../../node/cluster/meta-log.js';
import { activeSegment } from '../../../node/cluster/metadata-state.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-metalog-'));
}

const noRetention = { retentionMs: null, retentionBytes: null };

test('commands survive reopen and apply in order', async (t) => {
  const dir = tmp();
  const log = MetaLog.open(dir);
  const [a, b] = await Promise.all([
    log.propose({
      type: 'createTopic',
      name: 'logs',
      retention: noRetention,
      createdAtMs: 1,
      leaderNodeId: 1,
    }),
    log.propose({ type: 'commitCursor', topic: 'logs', consumer: 'shared', offset: 0 }),
  ]);
  t.deepEqual([a, b], [1, 2]);
  await log.propose({ type: 'sealSegment', topic: 'logs', segmentId: 1, endOffset: 10, nextLeaderNodeId: 1 });
  await log.propose({ type: 'commitCursor', topic: 'logs', consumer: 'shared', offset: 7 });
  log.close();
  const again = MetaLog.open(dir);
  const topic = again.state.topics.get('logs');
  t.truthy(topic);
  t.is(again.state.appliedIndex, 4);
  t.deepEqual(
    topic?.segments.map((s) => [s.id, s.baseOffset, s.endOffset]),
    [
      [1, 0, 10],
      [2, 10, null],
    ],
  );
  t.is(topic?.cursors.get('shared'), 7);
  t.is(activeSegment(topic!).id, 2);
  again.close();
});

test('a torn last record is truncated; earlier ones stay', async (t) => {
  const dir = tmp();
  const log = MetaLog.open(dir);
  await log.propose({
    type: 'createTopic',
    name: 'a',
    retention: noRetention,
    createdAtMs: 1,
    leaderNodeId: 1,
  });
  await log.propose({
    type: 'createTopic',
    name: 'b',
    retention: noRetention,
    createdAtMs: 1,
    leaderNodeId: 1,
  });
  log.close();
  const file = path.join(dir, 'entries.log');
  const size = fs.statSync(file).size;
  for (let cut = size - 1; cut > size - 30; cut -= 7) {
    const copy = tmp();
    fs.copyFileSync(file, path.join(copy, 'entries.log'));
    fs.truncateSync(path.join(copy, 'entries.log'), cut);
    let truncated = false;
    const reopened = MetaLog.open(copy, () => {
      truncated = true;
    });
    t.true(truncated);
    t.true(reopened.state.topics.has('a'));
    t.false(reopened.state.topics.has('b'));
    await reopened.propose({
      type: 'createTopic',
      name: 'c',
      retention: noRetention,
      createdAtMs: 1,
      leaderNodeId: 1,
    });
    reopened.close();
    t.true(MetaLog.open(copy).state.topics.has('c'));
  }
});

test('a corrupt record followed by valid ones refuses start-up', async (t) => {
  const dir = tmp();
  const log = MetaLog.open(dir);
  for (const name of ['a', 'b', 'c']) {
    await log.propose({ type: 'createTopic', name, retention: noRetention, createdAtMs: 1, leaderNodeId: 1 });
  }
  log.close();
  const file = path.join(dir, 'entries.log');
  const bytes = fs.readFileSync(file);
  bytes[20] = bytes[20]! ^ 0x01; // inside the first record's body
  fs.writeFileSync(file, bytes);
  const error = t.throws(() => MetaLog.open(dir), { instanceOf: MetaLogError });
  t.is(error?.code, 'CORRUPT_RECORD');
});

test('compaction writes a snapshot and restarts the log without losing state', async (t) => {
  const dir = tmp();
  const log = MetaLog.open(dir);
  await log.propose({
    type: 'createTopic',
    name: 'x',
    retention: noRetention,
    createdAtMs: 5,
    leaderNodeId: 3,
  });
  await log.propose({ type: 'commitCursor', topic: 'x', consumer: 'c1', offset: 0 });
  log.compact();
  t.is(fs.statSync(path.join(dir, 'entries.log')).size, 0);
  await log.propose({ type: 'commitCursor', topic: 'x', consumer: 'c1', offset: 0 });
  log.close();
  const again = MetaLog.open(dir);
  t.is(again.state.appliedIndex, 3);
  t.is(again.state.topics.get('x')?.createdAtMs, 5);
  t.is(again.state.topics.get('x')?.cursors.get('c1'), 0);
  again.close();
  const snap = path.join(dir, 'snapshot.bin');
  const bytes = fs.readFileSync(snap);
  bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0x10;
  fs.writeFileSync(snap, bytes);
  t.throws(() => MetaLog.open(dir), { message: /checksum/ });
});

test('state machine ignores commands that no longer apply', async (t) => {
  const dir = tmp();
  const log = MetaLog.open(dir);
  await log.propose({
    type: 'createTopic',
    name: 'x',
    retention: noRetention,
    createdAtMs: 5,
    leaderNodeId: 1,
  });
  await log.propose({ type: 'sealSegment', topic: 'x', segmentId: 7, endOffset: 3, nextLeaderNodeId: 1 });
  await log.propose({ type: 'sealSegment', topic: 'gone', segmentId: 1, endOffset: 3, nextLeaderNodeId: 1 });
  await log.propose({ type: 'dropSegments', topic: 'x', segmentIds: [1] });
  t.deepEqual(
    log.state.topics.get('x')?.segments.map((s) => s.id),
    [1],
    'the active segment is never dropped and a seal of a non-active segment is ignored',
  );
  log.close();
});
