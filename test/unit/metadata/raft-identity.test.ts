/**
 * RaftIdentity on real files: made once with the raft_meta/ directory, read back unchanged, a cluster
 * id adopted durably, an old raft_meta/ without identity.bin upgraded, damage refused, and a write
 * that fails half-way leaves the old identity.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { RaftDiskStorage, RaftStorageError } from '../../../node/metadata/raft-disk-storage.js';
import { RaftIdentity, isIdentityId, newIdentityId } from '../../../node/metadata/raft-identity.js';
import { EntryKind } from '../../../node/raft/index.js';
import { FaultInjectingFileIo } from '../../../node/storage-io/index.js';

const created: string[] = [];

function tmp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-identity-'));
  created.push(dir);
  return dir;
}

test.after.always(() => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true });
});

const idPath = (dir: string): string => path.join(dir, 'raft_meta', 'identity.bin');

test('ids are 32 lowercase hex digits, random, never all zero', (t) => {
  const a = newIdentityId();
  t.true(isIdentityId(a));
  t.not(a, newIdentityId());
  t.false(isIdentityId('0'.repeat(32)));
  t.false(isIdentityId(a.toUpperCase()));
  t.false(isIdentityId(a.slice(1)));
  t.false(isIdentityId(42));
});

test('a bootstrapping node makes an incarnation and a cluster id, read back unchanged', (t) => {
  const dir = tmp();
  const made = RaftIdentity.open(dir, { bootstrapCluster: true });
  t.true(made.created);
  t.true(isIdentityId(made.incarnation));
  t.true(isIdentityId(made.clusterId));
  const again = RaftIdentity.open(path.join(dir, 'raft_meta'), { bootstrapCluster: true });
  t.false(again.created);
  t.is(again.incarnation, made.incarnation);
  t.is(again.clusterId, made.clusterId);
  t.false(fs.existsSync(path.join(dir, 'raft_meta', 'raft_meta')));
});

test('a joiner has no cluster id until it adopts one, durably; it never changes clusters', (t) => {
  const dir = tmp();
  const joiner = RaftIdentity.open(dir, { bootstrapCluster: false });
  t.is(joiner.clusterId, null);
  t.is(
    RaftIdentity.open(dir, { bootstrapCluster: true }).clusterId,
    null,
    'the flag only counts at creation',
  );
  const cluster = newIdentityId();
  joiner.adoptClusterId(cluster);
  joiner.adoptClusterId(cluster);
  t.is(joiner.clusterId, cluster);
  const reopened = RaftIdentity.open(dir, { bootstrapCluster: false });
  t.is(reopened.clusterId, cluster);
  t.is(reopened.incarnation, joiner.incarnation);
  t.throws(() => reopened.adoptClusterId(newIdentityId()), { message: /already in cluster/ });
  t.throws(() => reopened.adoptClusterId('not an id'));
});

test('a wiped data directory comes back with a new incarnation', (t) => {
  const dir = tmp();
  const before = RaftIdentity.open(dir, { bootstrapCluster: true });
  fs.rmSync(path.join(dir, 'raft_meta'), { recursive: true });
  const after = RaftIdentity.open(dir, { bootstrapCluster: true });
  t.true(after.created);
  t.not(after.incarnation, before.incarnation);
  t.not(after.clusterId, before.clusterId);
});

test('upgrade: a raft_meta/ written without identity.bin keeps its log and gains an identity', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, { voters: [1], learners: [] });
  s.persist({
    hardState: { term: 3, vote: 1, commit: 1 },
    entries: [{ index: 1, term: 3, kind: EntryKind.Normal, data: new Uint8Array([1]) }],
    snapshot: null,
  });
  s.close();
  t.false(fs.existsSync(idPath(dir)));
  const reopened = RaftDiskStorage.open(dir, { voters: [], learners: [] });
  t.false(reopened.fresh);
  // Not fresh, so not a bootstrap: the cluster id is learnt from the cluster, never made here.
  const identity = RaftIdentity.open(dir, { bootstrapCluster: reopened.fresh });
  t.true(identity.created);
  t.is(identity.clusterId, null);
  t.deepEqual(reopened.hardState(), { term: 3, vote: 1, commit: 1 });
  reopened.close();
  t.is(RaftIdentity.open(dir, { bootstrapCluster: false }).incarnation, identity.incarnation);
});

test('a damaged or cut identity.bin refuses to start with CORRUPT_RECORD, naming the file', (t) => {
  const dir = tmp();
  RaftIdentity.open(dir, { bootstrapCluster: true });
  const good = fs.readFileSync(idPath(dir));
  const refused = (bytes: Buffer, what: string): void => {
    fs.writeFileSync(idPath(dir), bytes);
    const error = t.throws(() => RaftIdentity.open(dir, { bootstrapCluster: true }), {
      instanceOf: RaftStorageError,
    });
    t.is(error?.code, 'CORRUPT_RECORD', what);
    t.true(error?.message.includes('identity.bin'), what);
    t.regex(error?.message ?? '', /remove-node/, what);
  };
  for (let at = 0; at < good.length; at++) {
    const bad = Buffer.from(good);
    bad[at]! ^= 1 << (at % 8);
    refused(bad, `bit flip at ${at}`);
    refused(good.subarray(0, at), `cut at ${at}`);
  }
  refused(Buffer.concat([good, Buffer.from([0])]), 'a trailing byte');
  fs.writeFileSync(idPath(dir), good);
  t.false(RaftIdentity.open(dir, { bootstrapCluster: true }).created);
});

test('a failed write leaves the old identity; a leftover temp file is removed', (t) => {
  const dir = tmp();
  const io = new FaultInjectingFileIo();
  const identity = RaftIdentity.open(dir, { bootstrapCluster: false }, io);
  io.inject({ op: 'rename', code: 'EIO', pathIncludes: 'identity.bin' });
  const error = t.throws(() => identity.adoptClusterId(newIdentityId()), { instanceOf: RaftStorageError });
  t.is(error?.code, 'UNAVAILABLE');
  t.is(identity.clusterId, null);
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: 'identity.bin' });
  t.is(
    t.throws(() => identity.adoptClusterId(newIdentityId()), { instanceOf: RaftStorageError })?.code,
    'DISK_FULL',
  );
  fs.writeFileSync(`${idPath(dir)}.tmp`, 'half-written');
  const reopened = RaftIdentity.open(dir, { bootstrapCluster: true });
  t.is(reopened.clusterId, null);
  t.is(reopened.incarnation, identity.incarnation);
  t.false(fs.existsSync(`${idPath(dir)}.tmp`));
});
