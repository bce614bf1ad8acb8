/**
 * Which peers a node accepts: another cluster is refused, a member under another incarnation is
 * refused (with the operator's way out in the message), a non-member is let through to join, and a
 * member recorded without an incarnation (upgrade) accepts the first one it sees. And how a cluster
 * whose metadata has no id gets one, and every node learns it.
 */
import { silentLogger } from '../../../node/log.js';
import test from 'ava';
import {
  PeerIdentityGuard,
  type PeerIdentity,
  ensureClusterId,
} from '../../../node/metadata/cluster-identity.js';
import { type MetaCommand, MetadataState } from '../../../node/metadata/metadata-state.js';
import { newIdentityId } from '../../../node/metadata/raft-identity.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';

interface Logged {
  readonly o: object;
  readonly m: string;
}

function setup(o: { clusterId?: string | null; nowMs?: () => number } = {}) {
  const state = new MetadataState();
  const errors: Logged[] = [];
  const identity = {
    clusterId: o.clusterId === undefined ? newIdentityId() : o.clusterId,
    incarnation: newIdentityId(),
  };
  const guard = new PeerIdentityGuard({
    nodeId: 1,
    identity,
    state,
    logger: { ...silentLogger, error: (obj, m) => errors.push({ o: obj, m }) },
    ...(o.nowMs ? { nowMs: o.nowMs } : {}),
  });
  const register = (nodeId: number, incarnation?: string): void =>
    state.apply(state.appliedIndex + 1, {
      type: 'registerNode',
      node: {
        nodeId,
        raftAddr: `h:${nodeId}`,
        clientAddr: `h:${nodeId + 100}`,
        ...(incarnation ? { incarnation } : {}),
      },
    });
  return { state, errors, identity, guard, register };
}

function refusal(fn: () => void): WalrusError {
  try {
    fn();
  } catch (error) {
    if (error instanceof WalrusError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

test('self(): what this node presents, read anew each time (the cluster id is learnt on joining)', (t) => {
  const { guard, identity } = setup({ clusterId: null });
  t.deepEqual(guard.self(), { clusterId: null, nodeId: 1, incarnation: identity.incarnation });
  identity.clusterId = newIdentityId();
  t.is(guard.self().clusterId, identity.clusterId);
});

test('a member under its recorded incarnation is accepted, from this cluster or not knowing it yet', (t) => {
  const { guard, identity, register } = setup();
  const inc = newIdentityId();
  register(2, inc);
  t.notThrows(() => guard.check({ clusterId: identity.clusterId, nodeId: 2, incarnation: inc }));
  // A joiner before its join reply arrived knows no cluster id yet.
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 2, incarnation: inc }));
});

test('a member under another incarnation (a wiped data directory) is refused, saying what to do', (t) => {
  const { guard, identity, register, errors } = setup();
  const recorded = newIdentityId();
  register(3, recorded);
  const wiped = newIdentityId();
  for (const clusterId of [null, identity.clusterId]) {
    const error = refusal(() => guard.check({ clusterId, nodeId: 3, incarnation: wiped }));
    t.is(error.code, ErrorCode.IDENTITY_MISMATCH);
    t.true(error.message.includes(wiped) && error.message.includes(recorded), error.message);
    t.regex(error.message, /walrus-cli remove-node 3/);
    t.regex(error.message, /--join/);
  }
  t.is(
    refusal(() => guard.check({ clusterId: null, nodeId: 3, incarnation: null })).code,
    'IDENTITY_MISMATCH',
  );
  t.is(errors.length, 1, 'one error line for repeated refusals of the same peer');
  t.like(errors[0]?.o, { peerNodeId: 3, code: 'IDENTITY_MISMATCH' });
});

test('a peer of another cluster is refused whoever it claims to be', (t) => {
  const { guard, identity, register } = setup();
  const inc = newIdentityId();
  register(2, inc);
  const other = newIdentityId();
  for (const peer of [
    { clusterId: other, nodeId: 2, incarnation: inc },
    { clusterId: other, nodeId: 9, incarnation: newIdentityId() },
  ] satisfies PeerIdentity[]) {
    const error = refusal(() => guard.check(peer));
    t.is(error.code, ErrorCode.IDENTITY_MISMATCH);
    t.true(error.message.includes(other) && error.message.includes(identity.clusterId!), error.message);
    t.regex(error.message, /without --join/);
    t.regex(error.message, /remove-node/);
  }
});

test('a node that knows no cluster yet (a joiner) does not judge clusters', (t) => {
  const { guard } = setup({ clusterId: null });
  t.notThrows(() => guard.check({ clusterId: newIdentityId(), nodeId: 2, incarnation: newIdentityId() }));
});

test('a node that is not a member is let through: it may only ask to join, and its join is judged', (t) => {
  const { guard, identity } = setup();
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 4, incarnation: newIdentityId() }));
  t.notThrows(() => guard.check({ clusterId: identity.clusterId, nodeId: 4, incarnation: newIdentityId() }));
});

test('another process under this node id is refused', (t) => {
  const { guard, identity } = setup();
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 1, incarnation: identity.incarnation }));
  t.is(
    refusal(() => guard.check({ clusterId: null, nodeId: 1, incarnation: newIdentityId() })).code,
    'IDENTITY_MISMATCH',
  );
});

test('upgrade: a member recorded without an incarnation accepts the first one it sees, then only that', (t) => {
  const { guard, register } = setup();
  register(2);
  const first = newIdentityId();
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 2, incarnation: first }));
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 2, incarnation: first }));
  t.is(
    refusal(() => guard.check({ clusterId: null, nodeId: 2, incarnation: newIdentityId() })).code,
    'IDENTITY_MISMATCH',
  );
  // Once the metadata records one (the member registered again), the record decides.
  const recorded = newIdentityId();
  register(2, recorded);
  t.notThrows(() => guard.check({ clusterId: null, nodeId: 2, incarnation: recorded }));
  t.throws(() => guard.check({ clusterId: null, nodeId: 2, incarnation: first }));
});

test('refusals are logged once per peer and reason per interval', (t) => {
  let now = 0;
  const { guard, register, errors } = setup({ nowMs: () => now });
  register(3, newIdentityId());
  const peer = { clusterId: null, nodeId: 3, incarnation: newIdentityId() };
  for (let i = 0; i < 5; i++) t.throws(() => guard.check(peer));
  t.is(errors.length, 1);
  now += 60_000;
  t.throws(() => guard.check(peer));
  t.is(errors.length, 2);
  t.throws(() => guard.check({ ...peer, clusterId: newIdentityId() }));
  t.is(errors.length, 3, 'another reason is logged at once');
});

// ---- the cluster id in the metadata ----

function fakeRaft(state: MetadataState, leader: boolean) {
  const proposed: MetaCommand[] = [];
  return {
    proposed,
    raft: {
      state,
      isLeader: leader,
      async propose(command: MetaCommand): Promise<number> {
        proposed.push(command);
        state.apply(state.appliedIndex + 1, command);
        return state.appliedIndex;
      },
    },
  };
}

function fakeIdentity(clusterId: string | null) {
  return {
    clusterId,
    adoptClusterId(id: string) {
      this.clusterId = id;
    },
  };
}

const quiet = { info() {}, error() {} };

test('ensureClusterId: the bootstrapping leader puts its cluster id into the metadata', async (t) => {
  const state = new MetadataState();
  const { raft, proposed } = fakeRaft(state, true);
  const identity = fakeIdentity(newIdentityId());
  await ensureClusterId({ raft, identity, logger: quiet, signal: new AbortController().signal });
  t.is(state.clusterId, identity.clusterId);
  t.deepEqual(proposed, [{ type: 'setClusterId', clusterId: identity.clusterId! }]);
});

test('ensureClusterId: on an upgraded cluster the leader makes one; a follower adopts what is applied', async (t) => {
  const state = new MetadataState();
  const leader = fakeIdentity(null);
  await ensureClusterId({
    raft: fakeRaft(state, true).raft,
    identity: leader,
    logger: quiet,
    signal: new AbortController().signal,
  });
  t.truthy(state.clusterId);
  t.is(leader.clusterId, state.clusterId);
  const follower = fakeIdentity(null);
  const { raft, proposed } = fakeRaft(state, false);
  await ensureClusterId({ raft, identity: follower, logger: quiet, signal: new AbortController().signal });
  t.is(follower.clusterId, state.clusterId);
  t.deepEqual(proposed, []);
});

test('ensureClusterId: a follower waits until the id is applied; stopping ends the wait', async (t) => {
  const state = new MetadataState();
  const { raft, proposed } = fakeRaft(state, false);
  const identity = fakeIdentity(null);
  const waiting = ensureClusterId({
    raft,
    identity,
    logger: quiet,
    signal: new AbortController().signal,
    intervalMs: 5,
  });
  await new Promise((r) => setTimeout(r, 30));
  t.is(identity.clusterId, null);
  const id = newIdentityId();
  state.apply(1, { type: 'setClusterId', clusterId: id });
  await waiting;
  t.is(identity.clusterId, id);
  t.deepEqual(proposed, []);
  const stop = new AbortController();
  const never = ensureClusterId({
    raft: fakeRaft(new MetadataState(), false).raft,
    identity: fakeIdentity(null),
    logger: quiet,
    signal: stop.signal,
    intervalMs: 5,
  });
  stop.abort();
  await never;
  t.pass();
});

test('ensureClusterId: a node whose own cluster id differs from the metadata says so and keeps its own', async (t) => {
  const state = new MetadataState();
  state.apply(1, { type: 'setClusterId', clusterId: newIdentityId() });
  const errors: string[] = [];
  const identity = fakeIdentity(newIdentityId());
  const own = identity.clusterId;
  await ensureClusterId({
    raft: fakeRaft(state, true).raft,
    identity,
    logger: { info() {}, error: (_o, m) => errors.push(m) },
    signal: new AbortController().signal,
  });
  t.is(identity.clusterId, own);
  t.is(errors.length, 1);
});
