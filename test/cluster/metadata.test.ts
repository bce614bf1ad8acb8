/**
 * Defects of the metadata layer, each reproduced on real processes as an outside review found it:
 * - a rollover must be invisible to Walrus text clients (they have no retry logic): PUTs sent
 *   round-robin to three nodes with tiny segments all answer OK;
 * - retention must never strand a consumer: with 2-record segments and a 5 s retention on three
 *   nodes, a consumer keeps reaching the newest records (it once read `[]` forever because each
 *   node deleted its own files and the metadata kept segments whose data was gone).
 */
import test from 'ava';
import { removeNodeAsAdmin } from '../../node/client/admin-client.js';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { type TestCluster, withCluster } from '../helpers/local-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { textCommands } from '../helpers/node-text.js';
import { TextClient } from '../../node/client/text-client.js';

/** The METRICS JSON of a node (with or without an `OK ` prefix), or undefined while it cannot answer. */
async function votersOf(addr: string): Promise<number[] | undefined> {
  try {
    const [reply] = await textCommands(addr, ['METRICS'], 2000);
    const json = reply!.startsWith('OK ') ? reply!.slice(3) : reply!;
    const m = JSON.parse(json) as { current_leader: number | null; membership_config: { voters: number[] } };
    return m.current_leader === null ? undefined : m.membership_config.voters;
  } catch {
    return undefined;
  }
}

async function threeVoters(cluster: TestCluster): Promise<void> {
  await eventually('three voters everywhere', async () => {
    const all = await Promise.all(cluster.nodes.map((n) => votersOf(n.clientAddr)));
    return all.every((v) => v?.length === 3) ? true : undefined;
  });
}

test.serial(
  'a rollover is invisible to text clients: PUTs round-robin over three nodes all answer OK',
  async (t) => {
    await withCluster(t, { nodeCount: 3, env: { WALRUS_MAX_SEGMENT_ENTRIES: '40' } }, async (cluster) => {
      await threeVoters(cluster);
      const clients = cluster.nodes.map((n) => new TextClient(n.clientAddr, { timeoutMs: 30_000 }));
      try {
        t.is(await clients[0]!.send('REGISTER roll'), 'OK');
        const failures: string[] = [];
        const putCount = 400;
        for (let i = 0; i < putCount; i++) {
          const reply = await clients[i % clients.length]!.send(`PUT roll m${i}`);
          if (reply !== 'OK') failures.push(`PUT ${i} via node ${(i % 3) + 1}: ${reply}`);
        }
        t.deepEqual(failures, []);
        const bin = new WalrusClient({ nodes: [cluster.nodes[0]!.clientAddr] });
        try {
          const info = await bin.describeTopic('roll');
          t.is(info.endOffset, putCount);
          t.true(info.segments.length >= putCount / 40, `${info.segments.length} segments`);
          const read = await bin.read('roll', 0, { recordCountMax: 40 });
          t.deepEqual(
            read.records.map((r) => Buffer.from(r.value).toString()),
            Array.from({ length: read.records.length }, (_, i) => `m${i}`),
          );
        } finally {
          await bin.close();
        }
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    });
  },
);

test.serial('retention never strands a consumer: it keeps reaching the newest records', async (t) => {
  await withCluster(
    t,
    {
      nodeCount: 3,
      env: { WALRUS_MAX_SEGMENT_ENTRIES: '2', WALRUS_MONITOR_CHECK_MS: '100', WALRUS_RETENTION_MS: '5000' },
    },
    async (cluster) => {
      await threeVoters(cluster);
      const bin = new WalrusClient({ nodes: cluster.nodes.map((n) => n.clientAddr) });
      try {
        await bin.createTopic('aging');
        let written = 0;
        const write = async (count: number): Promise<void> => {
          for (let i = 0; i < count; i++)
            await bin.append('aging', [{ value: Buffer.from(`r${written++}`) }]);
        };
        // Four rounds. Each waits until retention has dropped everything written before (each
        // node's segments expire at their own moments: the case that used to leave holes in the
        // metadata), then writes fresh records and reads them at once through the consumer, whose
        // cursor now lies at the topic's start: it must get exactly the fresh records, with no
        // empty read below the end. The fresh records are far younger than the retention then.
        for (let round = 0; round < 4; round++) {
          if (round > 0) {
            await eventually(
              `round ${round}: retention dropped the ${written} records written before`,
              async () => ((await bin.describeTopic('aging')).startOffset >= written ? true : undefined),
              30_000,
            );
          }
          const first = written;
          await write(6);
          const seen: string[] = [];
          for (let read = 0; read < 10 && seen.length < 6; read++) {
            const reply = await bin.consumerReadNext('aging', 'c', { recordCountMax: 4 });
            for (const r of reply.records) seen.push(Buffer.from(r.value).toString());
            if (reply.records.length === 0)
              t.fail(
                `round ${round}: an empty read at ${reply.nextOffset}, below the end ${reply.endOffset}`,
              );
          }
          t.deepEqual(
            seen,
            Array.from({ length: 6 }, (_, i) => `r${first + i}`),
          );
        }
        // Every node holds no file of a dropped segment and answers reads below the start as out of range.
        const info = await bin.describeTopic('aging');
        t.true(info.startOffset > 0);
        for (const n of cluster.nodes) {
          const one = new WalrusClient({ nodes: [n.clientAddr], retryCountMax: 0 });
          try {
            const error = await t.throwsAsync(one.read('aging', 0));
            t.is((error as { code?: string }).code, 'OFFSET_OUT_OF_RANGE');
          } finally {
            await one.close();
          }
        }
      } finally {
        await bin.close();
      }
    },
  );
});

test.serial(
  'remove-node hands segments off, moves the copies it holds to another voter, and refuses to lose a sole copy',
  async (t) => {
    await withCluster(t, { nodeCount: 4 }, async (cluster) => {
      await eventually('four voters everywhere', async () => {
        const all = await Promise.all(cluster.nodes.map((n) => votersOf(n.clientAddr)));
        return all.every((v) => v?.length === 4) ? true : undefined;
      });
      const bin = new WalrusClient({ nodes: cluster.nodes.map((n) => n.clientAddr) });
      try {
        const raftLeader = (await bin.metrics()) as { current_leader: number };
        // Topics are placed by name hash: find two led by one follower.
        const byLeader = new Map<number, string[]>();
        // Single-copy topics (replication factor 1): the victim holds their only copy.
        for (let i = 0; i < 40; i++) {
          const created = await bin.createTopic(`rm${i}`, { replicationFactor: 1 });
          const list = byLeader.get(created.topic.leaderNodeId) ?? [];
          list.push(`rm${i}`);
          byLeader.set(created.topic.leaderNodeId, list);
        }
        const victim = [...byLeader.keys()].find(
          (id) => id !== raftLeader.current_leader && (byLeader.get(id)?.length ?? 0) >= 2,
        );
        t.truthy(victim, 'some follower leads two topics');
        const [kept, empty] = byLeader.get(victim!)!;
        await bin.append(kept!, [{ value: Buffer.from('only copy') }]);
        // A replicated topic with a copy on the victim: its sealed segment must be re-replicated.
        let copied = '';
        for (let i = 0; copied === ''; i++) {
          const created = await bin.createTopic(`copied${i}`, { replicationFactor: 3 });
          if (created.topic.segments[0]!.replicas.includes(victim!)) copied = `copied${i}`;
        }
        for (let i = 0; i < 5; i++) await bin.append(copied, [{ value: Buffer.from(`c${i}`) }]);

        // Refused: the victim holds the only copy of an acknowledged record. (remove-node is an
        // admin operation: sent to the Raft leader's peer port, as walrus-cli does.)
        const admin = { addr: cluster.nodes[0]!.clientAddr, clusterSecret: null, timeoutMs: 30_000 };
        const refused = await t.throwsAsync(removeNodeAsAdmin(victim!, admin));
        t.is((refused as { code?: string }).code, 'CONFLICT');
        t.regex(refused!.message, new RegExp(`'${kept}'`));
        // ... and nothing was lost or stranded by the attempt: the topic still takes appends, and
        // both records read back (the hand-off before the refusal may have sealed a segment).
        await bin.append(kept!, [{ value: Buffer.from('after refusal') }]);
        const values: string[] = [];
        for (let offset = 0; offset < 2; ) {
          const page = await bin.read(kept!, offset);
          for (const r of page.records) values.push(Buffer.from(r.value).toString());
          offset = page.nextOffset;
        }
        t.deepEqual(values, ['only copy', 'after refusal']);

        // Once that topic is gone, the removal hands the empty segments off and succeeds.
        await bin.deleteTopic(kept!);
        t.deepEqual(await removeNodeAsAdmin(victim!, admin), { removed: true });
        await cluster.kill(
          cluster.nodes.findIndex((n) => n.spec.nodeId === victim),
          'SIGTERM',
        );
        const info = await bin.describeTopic(empty!);
        t.not(info.leaderNodeId, victim);
        // Every segment of the replicated topic now has three copies, none on the removed node.
        const moved = await bin.describeTopic(copied);
        for (const segment of moved.segments) {
          t.false(segment.replicas.includes(victim!), `segment ${segment.id} still lists node ${victim}`);
          t.is(segment.replicas.length, 3);
        }
        const copiedValues: string[] = [];
        for (let offset = 0; offset < 5; ) {
          const page = await bin.read(copied, offset);
          for (const r of page.records) copiedValues.push(Buffer.from(r.value).toString());
          offset = page.nextOffset;
        }
        t.deepEqual(copiedValues, ['c0', 'c1', 'c2', 'c3', 'c4']);
        const appended = await bin.append(empty!, [{ value: Buffer.from('moved') }]);
        t.is(appended.firstOffset, 0);
        t.deepEqual(
          (await bin.read(empty!, 0)).records.map((r) => Buffer.from(r.value).toString()),
          ['moved'],
        );
      } finally {
        await bin.close();
      }
    });
  },
);
