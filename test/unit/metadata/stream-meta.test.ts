/**
 * Durable Streams metadata in the state machine (metadata-state.ts): a stream's settings come with
 * its createTopic, close / touch / Stream-Seq commands change them, a deleted source with live
 * forks is soft-deleted and goes with its last fork (up the chain), and all of it survives a
 * snapshot round trip (what a follower or a restarted node installs).
 */
import test from 'ava';
import {
  type MetaCommand,
  MetadataState,
  forksOf,
  streamExpiryMs,
} from '../../../node/metadata/metadata-state.js';

const retention = { retentionMs: null, retentionBytes: null };

function createStream(name: string, forkOf: { topic: string; offset: number } | null = null): MetaCommand {
  return {
    type: 'createTopic',
    name,
    retention,
    createdAtMs: 1000,
    leaderNodeId: 1,
    stream: {
      path: `/v1/stream/${name}`,
      contentType: 'text/plain',
      ttlSeconds: 10,
      expiresAtMs: null,
      forkOf,
      closed: false,
    },
  };
}

function applyAll(state: MetadataState, commands: readonly MetaCommand[]): void {
  for (const c of commands) state.apply(state.appliedIndex + 1, c);
}

test('close, touch and Stream-Seq change the stream; its expiry slides with the last touch', (t) => {
  const s = new MetadataState();
  applyAll(s, [createStream('a')]);
  const stream = s.topics.get('a')!.stream!;
  t.is(streamExpiryMs(stream), 11_000);
  applyAll(s, [
    { type: 'touchStream', topic: 'a', atMs: 5000 },
    { type: 'touchStream', topic: 'a', atMs: 4000 },
    { type: 'setStreamSeq', topic: 'a', seq: '002' },
    { type: 'setStreamSeq', topic: 'a', seq: '001' },
    { type: 'closeStream', topic: 'a' },
  ]);
  t.is(streamExpiryMs(stream), 15_000, 'a touch never moves the expiry back');
  t.is(stream.lastSeq, '002', 'a Stream-Seq never moves back');
  t.true(stream.closed);
});

test('a source with forks is soft-deleted and goes with its last fork, up the chain', (t) => {
  const s = new MetadataState();
  applyAll(s, [
    createStream('src'),
    createStream('mid', { topic: 'src', offset: 1 }),
    createStream('leaf', { topic: 'mid', offset: 2 }),
    { type: 'softDeleteStream', topic: 'src' },
    { type: 'softDeleteStream', topic: 'mid' },
  ]);
  t.deepEqual(forksOf(s, 'src'), ['mid']);
  t.true(s.topics.get('src')!.stream!.softDeleted);
  t.true(s.topics.get('mid')!.stream!.softDeleted);
  applyAll(s, [{ type: 'deleteTopic', name: 'leaf' }]);
  t.deepEqual([...s.topics.keys()], [], 'deleting the last fork took both soft-deleted sources');
  // Without forks a soft delete is a delete.
  applyAll(s, [createStream('alone'), { type: 'softDeleteStream', topic: 'alone' }]);
  t.false(s.topics.has('alone'));
});

test('stream metadata survives a snapshot round trip; plain topics stay without it', (t) => {
  const s = new MetadataState();
  applyAll(s, [
    createStream('a'),
    { type: 'closeStream', topic: 'a' },
    { type: 'setStreamSeq', topic: 'a', seq: 'x' },
    { type: 'createTopic', name: 'plain', retention, createdAtMs: 1, leaderNodeId: 1 },
  ]);
  const restored = MetadataState.fromSnapshot(JSON.parse(JSON.stringify(s.toSnapshot())));
  t.deepEqual(restored.topics.get('a')!.stream, s.topics.get('a')!.stream);
  t.is(restored.topics.get('plain')!.stream, undefined);
  t.false('stream' in restored.topics.get('plain')!);
});
