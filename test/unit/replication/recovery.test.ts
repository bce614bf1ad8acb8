import test from 'ava';
import fc from 'fast-check';
import { ackQuorum, fenceQuorum, planRecovery } from '../../../node/replication/index.js';

const segment = { baseOffset: 100, replicas: [1, 2, 3] };

test('with too few fenced answers the recovery waits', (t) => {
  const plan = planRecovery(segment, 2, [{ nodeId: 2, epoch: 2, endOffset: 110 }]);
  t.is(plan.kind, 'wait');
});

test('a replica set of two with one member dead waits: one copy is no quorum (S3)', (t) => {
  const plan = planRecovery({ baseOffset: 0, replicas: [1, 2] }, 2, [{ nodeId: 2, epoch: 2, endOffset: 7 }]);
  t.is(plan.kind, 'wait');
});

test('answers at an older epoch or from strangers do not count', (t) => {
  const plan = planRecovery(segment, 2, [
    { nodeId: 2, epoch: 1, endOffset: 110 },
    { nodeId: 9, epoch: 2, endOffset: 120 },
    { nodeId: 3, epoch: 2, endOffset: 105 },
  ]);
  t.is(plan.kind, 'wait');
});

test('a newer epoch among the answers supersedes the recovery', (t) => {
  const plan = planRecovery(segment, 2, [{ nodeId: 2, epoch: 3, endOffset: 110 }]);
  t.deepEqual(plan, { kind: 'superseded', epoch: 3 });
});

test('the seal is the greatest end among the answers, copied until a quorum holds it', (t) => {
  const plan = planRecovery(segment, 2, [
    { nodeId: 2, epoch: 2, endOffset: 110 },
    { nodeId: 3, epoch: 2, endOffset: 104 },
  ]);
  t.deepEqual(plan, {
    kind: 'seal',
    endOffset: 110,
    sourceNodeId: 2,
    copyTo: [{ nodeId: 3, fromOffset: 104 }],
  });
});

test('an empty segment seals at its base with nothing to copy', (t) => {
  const plan = planRecovery(segment, 2, [
    { nodeId: 2, epoch: 2, endOffset: 100 },
    { nodeId: 3, epoch: 2, endOffset: 100 },
  ]);
  t.deepEqual(plan, { kind: 'seal', endOffset: 100, sourceNodeId: 2, copyTo: [] });
});

// The model: a leader appended records 0..written-1; each replica holds a prefix of them; a record
// was acknowledged when ackQuorum(n) replicas held it. Whichever fenceQuorum(n) replicas answer,
// the seal keeps every acknowledged record (S1, S2) and, after the copies, Qa replicas hold the
// sealed end (S3).
test('property: whatever answers, no acknowledged record is cut and the seal reaches a quorum', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 7 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          ends: fc.array(fc.nat(50), { minLength: n, maxLength: n }),
          answering: fc.shuffledSubarray([...Array(n).keys()], { minLength: fenceQuorum(n) }),
        }),
      ),
      ({ n, ends, answering }) => {
        const replicas = ends.map((_, i) => i + 1);
        const acknowledgedEnd = [...ends].sort((a, b) => b - a)[ackQuorum(n) - 1]!;
        const plan = planRecovery(
          { baseOffset: 0, replicas },
          5,
          answering.map((i) => ({ nodeId: i + 1, epoch: 5, endOffset: ends[i]! })),
        );
        // Fewer answers than a quorum: nothing can be brought to a quorum, so the recovery waits.
        if (answering.length < ackQuorum(n)) return plan.kind === 'wait';
        if (plan.kind !== 'seal') return false;
        if (plan.endOffset < acknowledgedEnd) return false;
        const after = answering.map((i) => ends[i]!);
        const holding = after.filter((e) => e >= plan.endOffset).length + plan.copyTo.length;
        return holding >= ackQuorum(n) && plan.copyTo.every((c) => ends[c.nodeId - 1]! === c.fromOffset);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});
