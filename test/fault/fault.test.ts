/**
 * Faults on real processes: a paused (SIGSTOP) Raft leader is replaced and steps down when it
 * resumes, with no second leader in any term; a segment leader killed (-9) in the middle of a
 * stream of appends loses no acknowledged record and serves every one at its offset after restart.
 */
import test, { type ExecutionContext } from 'ava';
import { TextClient } from '../../node/client/text-client.js';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { type TestCluster, startLocalCluster } from '../helpers/local-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { nodeMetrics as metrics } from '../helpers/node-text.js';

async function withCluster(
  t: ExecutionContext,
  env: Record<string, string>,
  run: (c: TestCluster) => Promise<void>,
) {
  const cluster = await startLocalCluster({ nodeCount: 3, env });
  try {
    await run(cluster);
  } catch (error) {
    for (const n of cluster.nodes) t.log(`--- node ${n.spec.nodeId} ---\n${n.logTail.slice(-2000)}`);
    throw error;
  } finally {
    for (let i = 0; i < cluster.nodes.length; i++) cluster.nodes[i]!.process?.kill('SIGCONT');
    await cluster.destroy();
  }
}

/** Waits until every node reports the same leader and three voters; returns the leader's id. */
function threeVoters(cluster: TestCluster): Promise<number> {
  return eventually('a leader of three voters', async () => {
    const ms = await Promise.all(cluster.nodes.map((n) => metrics(n.clientAddr)));
    const l = ms[0]?.current_leader;
    const agreed = ms.every((m) => m?.current_leader === l && m?.membership_config.voters.length === 3);
    return l && agreed ? l : undefined;
  });
}

test.serial('a paused leader is replaced, and steps down when it resumes', async (t) => {
  await withCluster(t, {}, async (cluster) => {
    // Wait for three voters: with a learner not yet promoted, losing the leader loses the quorum.
    const leader = await threeVoters(cluster);
    const index = cluster.nodes.findIndex((n) => n.spec.nodeId === leader);
    const survivors = cluster.nodes.filter((_, i) => i !== index);
    cluster.nodes[index]!.process!.kill('SIGSTOP');
    const newLeader = await eventually('a new leader among the survivors', async () => {
      const ms = await Promise.all(survivors.map((n) => metrics(n.clientAddr)));
      const l = ms[0]?.current_leader;
      return l && l !== leader && ms.every((m) => m?.current_leader === l) ? l : undefined;
    });
    const created = await eventually('a metadata change without the old leader', async () => {
      const c = new TextClient(survivors[0]!.clientAddr, { timeoutMs: 3000 });
      try {
        return (await c.send('REGISTER while-paused')) === 'OK' ? true : undefined;
      } finally {
        await c.close();
      }
    });
    t.true(created);
    cluster.nodes[index]!.process!.kill('SIGCONT');
    const resumed = await eventually('the old leader to follow', async () => {
      const m = await metrics(cluster.nodes[index]!.clientAddr);
      return m && m.state !== 'Leader' && m.current_leader === newLeader ? m : undefined;
    });
    t.is(resumed.current_leader, newLeader);
    const ms = await Promise.all(cluster.nodes.map((n) => metrics(n.clientAddr)));
    t.is(ms.filter((m) => m?.state === 'Leader').length, 1, 'one leader');
    const state = await eventually('the old leader to learn the topic', async () => {
      const c = new TextClient(cluster.nodes[index]!.clientAddr, { timeoutMs: 3000 });
      try {
        const r = await c.send('STATE while-paused');
        return r.startsWith('{') ? r : undefined;
      } finally {
        await c.close();
      }
    });
    t.regex(state, /"topic":"while-paused"/);
  });
});

test.serial('kill -9 of a segment leader mid-stream loses no acknowledged record', async (t) => {
  await withCluster(t, {}, async (cluster) => {
    const client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 5000, retryCountMax: 2 });
    try {
      const topic = await eventually('topic', () => client.createTopic('acked'));
      const leaderIndex = cluster.nodes.findIndex((n) => n.spec.nodeId === topic.topic.leaderNodeId);
      const acked = new Map<number, string>();
      let stop = false;
      let sent = 0;
      const writers = Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; !stop && i < 100_000; i++) {
          const value = `w${w}-${i}`;
          sent++;
          try {
            const r = await client.append('acked', [{ value: Buffer.from(value) }]);
            acked.set(r.firstOffset, value);
          } catch {
            // Not acknowledged: it may or may not be there; the check below only covers acks.
          }
        }
      });
      await eventually('some acknowledged appends', async () => (acked.size > 500 ? true : undefined));
      await cluster.kill(leaderIndex, 'SIGKILL');
      stop = true;
      await Promise.all(writers);
      t.true(acked.size > 500, `only ${acked.size} of ${sent} appends were acknowledged`);
      await cluster.startNode(leaderIndex);
      const end = Math.max(...acked.keys()) + 1;
      const seen = new Map<number, string>();
      for (let offset = 0; offset < end; ) {
        const page = await eventually('a read after restart', () =>
          client.read('acked', offset, { recordCountMax: 1000 }),
        );
        if (page.records.length === 0) break;
        for (const r of page.records) seen.set(r.offset, Buffer.from(r.value).toString('utf8'));
        offset = page.nextOffset;
      }
      const lost = [...acked].filter(([offset, value]) => seen.get(offset) !== value);
      t.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged records missing or changed`);
      t.is(new Set(seen.values()).size, seen.size, 'no record appears twice');
    } finally {
      await client.close();
    }
  });
});

test.serial(
  'an idempotent producer retrying after kill -9 of its segment leader gets its first answer, not a second copy',
  async (t) => {
    await withCluster(t, {}, async (cluster) => {
      await threeVoters(cluster);
      const client = new WalrusClient({
        nodes: cluster.clientAddrs,
        requestTimeoutMs: 5000,
        retryCountMax: 2,
      });
      try {
        const topic = await eventually('topic', () => client.createTopic('exactly-once'));
        const leaderIndex = cluster.nodes.findIndex((n) => n.spec.nodeId === topic.topic.leaderNodeId);
        const batch = (seq: number) =>
          Array.from({ length: 3 }, (_, i) => ({
            value: Buffer.from(`s${seq}-${i}`),
            headers: { n: String(i) },
          }));
        const acks = [];
        for (let seq = 0; seq < 10; seq++) {
          acks.push(await client.append('exactly-once', batch(seq), { producerId: 'p1', producerSeq: seq }));
          await client.append('exactly-once', [{ value: Buffer.from('other') }], {
            producerId: 'p2',
            producerSeq: seq,
          });
        }
        await cluster.kill(leaderIndex, 'SIGKILL');
        await cluster.startNode(leaderIndex);
        await threeVoters(cluster);
        // The acknowledgement of seq 9 was "lost": the producer sends it again.
        const retry = await eventually('a retry after the restart', () =>
          client.append('exactly-once', batch(9), { producerId: 'p1', producerSeq: 9 }),
        );
        t.true(retry.duplicate, 'answered as a duplicate');
        t.is(retry.firstOffset, acks[9]!.firstOffset);
        t.is(retry.lastOffset, acks[9]!.lastOffset);
        const gap = await client.append('exactly-once', batch(5), { producerId: 'p1', producerSeq: 5 }).then(
          () => 'accepted',
          (error: { code?: string }) => error.code,
        );
        t.is(gap, 'SEQUENCE_MISMATCH', 'an old sequence is refused');
        const next = await client.append('exactly-once', batch(10), { producerId: 'p1', producerSeq: 10 });
        t.false(next.duplicate);
        t.is(next.firstOffset, acks[9]!.lastOffset + 2, 'after p2s last record');
        t.true(
          (
            await client.append('exactly-once', [{ value: Buffer.from('x') }], {
              producerId: 'p2',
              producerSeq: 9,
            })
          ).duplicate,
        );
        // Nothing was written twice, and the node's own header never reaches a reader.
        const info = await client.describeTopic('exactly-once');
        t.is(info.endOffset, 10 * 4 + 3);
        // The failover sealed the segment: the records span two segments, read page by page.
        const records = [];
        for (let offset = 0; offset < 43; ) {
          const page = await client.read('exactly-once', offset, { recordCountMax: 100 });
          if (page.records.length === 0) break;
          records.push(...page.records);
          offset = page.nextOffset;
        }
        t.is(records.length, 43);
        t.deepEqual(records[2]!.headers, { n: '2' });
        t.true(records.every((r) => Object.keys(r.headers).every((name) => !name.startsWith('\u0000'))));
      } finally {
        await client.close();
      }
    });
  },
);
