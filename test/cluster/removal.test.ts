/**
 * remove-node on real processes, one removal at a time: while node V's removal waits for V to
 * hand its segments off (V is SIGSTOPped), METRICS shows `removing` on every node and a removal
 * of another node is refused UNAVAILABLE naming V; once V answers again its removal completes,
 * the mark is gone, and the other removal goes through.
 */
import test from 'ava';
import { removeNodeAsAdmin } from '../../node/client/admin-client.js';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { withCluster } from '../helpers/local-cluster.js';
import { eventually } from '../helpers/eventually.js';

interface Metrics {
  current_leader: number | null;
  membership_config: { voters: number[] };
  removing?: { node_id: number; by_node_id: number; since_ms: number } | null;
}

test.serial(
  'a second remove-node while one is under way is refused, and the removal shows in METRICS',
  async (t) => {
    await withCluster(t, { nodeCount: 5 }, async (cluster) => {
      const all = new WalrusClient({ nodes: cluster.nodes.map((n) => n.clientAddr) });
      t.teardown(() => all.close());
      await eventually('five voters', async () => {
        const m = (await all.metrics().catch(() => null)) as Metrics | null;
        return m?.current_leader != null && m.membership_config.voters.length === 5 ? true : undefined;
      });
      const raftLeader = ((await all.metrics()) as Metrics).current_leader!;
      // A follower that leads a topic's active segment: its removal asks it to hand the segment off.
      let victim = 0;
      for (let i = 0; victim === 0; i++) {
        const created = await all.createTopic(`rm${i}`);
        if (created.topic.leaderNodeId !== raftLeader) victim = created.topic.leaderNodeId;
      }
      const other = cluster.nodes.map((n) => n.spec.nodeId).find((id) => id !== raftLeader && id !== victim)!;
      const victimIndex = cluster.nodes.findIndex((n) => n.spec.nodeId === victim);
      const rest = cluster.nodes.filter((n) => n.spec.nodeId !== victim);
      const client = new WalrusClient({ nodes: rest.map((n) => n.clientAddr) });
      t.teardown(() => client.close());
      const admin = { addr: rest[0]!.clientAddr, clusterSecret: null, timeoutMs: 60_000 };

      await cluster.kill(victimIndex, 'SIGSTOP');
      let resumed = false;
      const resume = (): void => {
        if (!resumed) cluster.nodes[victimIndex]!.process?.kill('SIGCONT');
        resumed = true;
      };
      t.teardown(resume);
      const first = removeNodeAsAdmin(victim, admin);
      first.catch(() => {});
      try {
        await eventually('METRICS shows the removal on every running node', async () => {
          for (const n of rest) {
            const one = new WalrusClient({ nodes: [n.clientAddr] });
            try {
              const m = (await one.metrics()) as Metrics;
              if (m.removing?.node_id !== victim) return undefined;
            } finally {
              await one.close();
            }
          }
          return true;
        });
        const refused = await t.throwsAsync(removeNodeAsAdmin(other, { ...admin, timeoutMs: 5_000 }));
        t.is((refused as { code?: string }).code, 'UNAVAILABLE');
        t.regex(refused!.message, new RegExp(`node ${victim} is being removed`));
        t.true(((await client.metrics()) as Metrics).membership_config.voters.includes(other));
      } finally {
        resume();
      }
      t.deepEqual(await first, { removed: true });
      await eventually('the mark is gone once the node is unregistered', async () => {
        const m = (await client.metrics()) as Metrics;
        return m.removing === null && !m.membership_config.voters.includes(victim) ? true : undefined;
      });
      t.deepEqual(await removeNodeAsAdmin(other, admin), { removed: true });
    });
  },
);
