/**
 * Small units of the Raft core: config validation, PRNG, Inflights, MemoryStorage, conf codec,
 * quorum arithmetic (property-tested against a naive count), and peer-input robustness.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  committedIndex,
  decodeConfEntry,
  EntryKind,
  Inflights,
  MemoryStorage,
  makeRaftConfig,
  MessageType,
  Prng,
  quorumSize,
  RaftConfig,
} from '../../../node/raft/index.js';
import { drain, ents, enc, makeConf, makeNode, msg } from './harness.js';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

test('RaftConfig: defaults are valid and bad values are refused with INVALID_CONFIG', (t) => {
  const c = makeRaftConfig({ id: 1 });
  t.is(c.electionTick, 10);
  t.is(c.heartbeatTick, 1);
  t.is(c.snapshotTimeoutTick, 30);
  t.true(Object.isFrozen(c));
  for (const bad of [
    { id: 0 },
    { id: 1, electionTick: 2, heartbeatTick: 2 },
    { id: 1, inflightMsgCountMax: 0 },
    { id: 1, appendBytesMax: 1024, inflightBytesMax: 10 },
    { id: 1.5 },
  ]) {
    t.is(
      code(() => makeRaftConfig(bad)),
      'INVALID_CONFIG',
      JSON.stringify(bad),
    );
  }
  t.is(
    code(() => RaftConfig.validate({ ...c, electionTick: 1 })),
    'INVALID_CONFIG',
  );
  t.is(RaftConfig.validate(c).electionTick, RaftConfig.defaults.electionTick);
});

test('Prng: same seed, same sequence; ranges respected', (t) => {
  const a = new Prng(7);
  const b = new Prng(7);
  const xs = Array.from({ length: 100 }, () => a.nextU32());
  t.deepEqual(
    xs,
    Array.from({ length: 100 }, () => b.nextU32()),
  );
  t.notDeepEqual(
    xs,
    Array.from({ length: 100 }, () => new Prng(8).nextU32()),
  );
  const p = new Prng(1);
  const seen = new Set<number>();
  for (let k = 0; k < 1000; k++) {
    const v = p.nextInt(10);
    t.true(v >= 0 && v < 10);
    seen.add(v);
  }
  t.is(seen.size, 10);
});

test('Inflights: bounded by count and bytes, freed in order', (t) => {
  const f = new Inflights(3, 100);
  f.add(1, 10);
  f.add(2, 10);
  t.false(f.full());
  f.add(5, 10);
  t.true(f.full());
  t.throws(() => f.add(6, 1));
  f.freeLE(2);
  t.is(f.count, 1);
  t.is(f.bytes, 10);
  f.add(7, 95);
  t.true(f.full(), 'bytes limit');
  f.freeFirstOne();
  t.is(f.count, 1);
  f.freeLE(100);
  t.is(f.count, 0);
  t.is(f.bytes, 0);
});

test('MemoryStorage: append truncates a conflicting suffix; compact keeps the rest', (t) => {
  const s = new MemoryStorage(makeConf([1]));
  s.append(ents([1, 1, 1, 1]));
  s.append(ents([2, 2], 3));
  t.is(s.lastIndex(), 4);
  t.is(s.term(3), 2);
  t.throws(() => s.append(ents([3], 7)));
  s.compact({ meta: { index: 2, term: 1, conf: makeConf([1]) }, data: enc('x') });
  t.is(s.firstIndex(), 3);
  t.is(s.term(2), 1);
  t.is(s.term(1), undefined);
  t.deepEqual(
    s.entries(3, 5, 1_000).map((e) => e.term),
    [2, 2],
  );
  t.is(s.entries(3, 5, 1).length, 1, 'at least one entry even over maxBytes');
});

test('conf codec: garbage decodes to null, never throws', (t) => {
  for (const bad of [
    '',
    'null',
    '{}',
    '{"change":{"type":"x","nodeId":1},"conf":{"voters":[],"learners":[]}}',
    '\u0000',
  ]) {
    t.is(decodeConfEntry(enc(bad)), null, bad);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      decodeConfEntry(bytes);
    }),
  );
});

test('quorum: committedIndex equals the naive "largest index a majority has reached"', (t) => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 50 }), { minLength: 1, maxLength: 9 }), (matches) => {
      let naive = 0;
      for (const candidate of matches) {
        const count = matches.filter((m) => m >= candidate).length;
        if (count >= quorumSize(matches.length) && candidate > naive) naive = candidate;
      }
      return committedIndex(matches) === naive;
    }),
  );
  t.is(quorumSize(4), 3);
  t.is(committedIndex([]), 0);
});

test('malformed peer messages are refused with BAD_REQUEST and change nothing', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  const before = JSON.stringify(n.core.status());
  const bad = [
    msg({ type: MessageType.App, from: 2, to: 3, term: 1 }),
    msg({ type: MessageType.App, from: 1, to: 1, term: 1 }),
    msg({ type: MessageType.App, from: 0, to: 1, term: 1 }),
    msg({ type: MessageType.App, from: 2, to: 1, term: -1 }),
    msg({ type: MessageType.App, from: 2, to: 1, term: 1.5 }),
    msg({ type: 'Nope' as never, from: 2, to: 1, term: 1 }),
    msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: ents([1], 5) }),
    msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: ents([2]) }),
    msg({ type: MessageType.App, from: 2, to: 1, term: 3, entries: ents([2, 1]) }),
    msg({
      type: MessageType.App,
      from: 2,
      to: 1,
      term: 1,
      entries: [{ term: 1, index: 1, kind: EntryKind.Conf, data: enc('garbage') }],
    }),
    msg({ type: MessageType.Snap, from: 2, to: 1, term: 1 }),
    msg({
      type: MessageType.Snap,
      from: 2,
      to: 1,
      term: 1,
      snapshot: { meta: { index: 5, term: 9, conf: makeConf([1]) }, data: enc('') },
    }),
    null as never,
  ];
  for (const m of bad)
    t.is(
      code(() => n.core.step(m)),
      'BAD_REQUEST',
      JSON.stringify(m),
    );
  t.is(JSON.stringify(n.core.status()), before);
  t.is(n.core.ready(), null);
});

test('unexpected but well-formed messages are ignored without crashing', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  for (const type of Object.values(MessageType)) {
    if (type === MessageType.Snap) continue;
    n.core.step(msg({ type, from: 2, to: 1, term: 1, index: 7, commit: 3 }));
    drain(n);
  }
  // An ack or heartbeat response from a stranger while leading is ignored too.
  n.core.campaign();
  drain(n);
  n.core.step(msg({ type: MessageType.VoteResp, from: 3, to: 1, term: n.core.currentTerm }));
  drain(n);
  n.core.step(msg({ type: MessageType.AppResp, from: 9, to: 1, term: n.core.currentTerm, index: 100 }));
  n.core.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: n.core.currentTerm, index: 100 }));
  drain(n);
  t.is(n.core.role, 'Leader');
  t.is(n.core.log.committed, 0, 'an ack beyond our log counts for nothing');
});

test('status() reports the fields METRICS is built from', (t) => {
  const n = makeNode(1, [1, 2, 3]);
  n.core.campaign();
  drain(n);
  n.core.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
  drain(n);
  const s = n.core.status();
  t.like(s, {
    id: 1,
    state: 'Leader',
    term: 1,
    vote: 1,
    lastIndex: 1,
    leaderId: 1,
    voters: [1, 2, 3],
    learners: [],
    confIndex: 0,
  });
  t.deepEqual(Object.keys(s.progress).sort(), ['1', '2', '3']);
  t.like(s.progress[2], { match: 0, next: 1, state: 'probe' });
});

test('fuzz: any junk handed to step() is refused with BAD_REQUEST or handled, never a crash', (t) => {
  const junk = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.integer(),
    fc.string(),
    fc.double(),
    fc.object(),
  );
  const num = fc.oneof(fc.integer({ min: -2, max: 6 }), junk);
  const entry = fc.oneof(
    junk,
    fc.record({
      term: num,
      index: num,
      kind: fc.oneof(fc.constantFrom(0, 1, 2), junk),
      data: fc.oneof(fc.uint8Array(), junk),
    }),
  );
  const message = fc.record({
    type: fc.oneof(fc.constantFrom(...Object.values(MessageType)), junk),
    from: num,
    to: fc.oneof(fc.constant(1), num),
    term: num,
    logTerm: num,
    index: num,
    entries: fc.oneof(fc.array(entry, { maxLength: 3 }), junk),
    commit: num,
    reject: fc.boolean(),
    rejectHint: num,
    snapshot: fc.oneof(
      junk,
      fc.record({
        meta: fc.oneof(junk, fc.record({ index: num, term: num, conf: junk })),
        data: fc.uint8Array(),
      }),
    ),
    transfer: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(message, { maxLength: 8 }), (msgs) => {
      const n = makeNode(1, [1, 2, 3]);
      for (const m of msgs) {
        try {
          n.core.step(m as never);
        } catch (err) {
          if ((err as { code?: string }).code !== 'BAD_REQUEST') throw err;
        }
        drain(n);
      }
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('bad arguments from the application are typed errors', (t) => {
  const n = makeNode(1, [1]);
  n.core.campaign();
  drain(n);
  t.is(
    code(() => n.core.propose('text' as never)),
    'BAD_REQUEST',
  );
  t.is(
    code(() => n.core.compact(Number.NaN, enc('x'))),
    'BAD_COMPACT_INDEX',
  );
  t.is(
    code(() => n.core.transferLeadership(Number.NaN)),
    'BAD_REQUEST',
  );
  t.is(n.core.log.lastIndex(), 1, 'nothing was appended');
});
