import test from 'ava';
import { decideReplicaAppend } from '../../../node/replication/index.js';

const ask = { segmentId: 4, baseOffset: 100, epoch: 2, firstOffset: 100, recordCount: 3 };
const fresh = { fencedEpoch: 0, metadataEpoch: 2, sealedInMetadata: false, local: null, otherActive: null };

test('an append from an epoch older than the fence is refused (FENCED)', (t) => {
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, fencedEpoch: 3 }), { kind: 'fenced', epoch: 3 });
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, metadataEpoch: 3 }), { kind: 'fenced', epoch: 3 });
});

test('an append to a segment sealed here is refused', (t) => {
  t.is(decideReplicaAppend(ask, { ...fresh, sealedInMetadata: true }).kind, 'sealed');
  t.is(decideReplicaAppend(ask, { ...fresh, local: { endOffset: 100, sealed: true } }).kind, 'sealed');
});

test('the first records of a segment open it, after sealing the previous one cut to the new base', (t) => {
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, otherActive: { id: 3, endOffset: 104 } }), {
    kind: 'append',
    skip: 0,
    create: true,
    sealOther: { id: 3, cutTo: 100 },
  });
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, otherActive: { id: 3, endOffset: 100 } }), {
    kind: 'append',
    skip: 0,
    create: true,
    sealOther: { id: 3, cutTo: null },
  });
});

test('an append from an older segment than the local active one is stale', (t) => {
  t.is(decideReplicaAppend(ask, { ...fresh, otherActive: { id: 5, endOffset: 120 } }).kind, 'stale');
});

test('a gap asks for a resend from the local end; an overlap skips what is held', (t) => {
  const local = { endOffset: 101, sealed: false };
  t.deepEqual(decideReplicaAppend({ ...ask, firstOffset: 103 }, { ...fresh, local }), {
    kind: 'gap',
    expectedOffset: 101,
  });
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, local }), {
    kind: 'append',
    skip: 1,
    create: false,
    sealOther: null,
  });
  t.deepEqual(decideReplicaAppend(ask, { ...fresh, local: { endOffset: 110, sealed: false } }), {
    kind: 'append',
    skip: 3,
    create: false,
    sealOther: null,
  });
});
