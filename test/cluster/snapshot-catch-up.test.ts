/**
 * Defect 4 of issue 8 on real processes: a node that missed more metadata than the leader keeps in
 * its log must catch up by a snapshot far above the peer frame limit (4 MiB + 64 KiB).
 *
 * Three nodes; one follower is stopped; 21,000 topics with 200-character names are created (about
 * 390 bytes of metadata each), so the leader compacts its log a second time at a little over 20,000
 * applied entries (raftNodeLimits.compactEntryCount is 10,000) into a snapshot of ~7.8 MB. The follower restarts,
 * its log ends long before the leader's first entry, and only a snapshot can bring it back. It must
 * reach the leader's applied index, and count as a voter again: with the other follower stopped, a
 * metadata change still commits (it needs the restarted node's vote).
 *
 * Also: a topic with data on the stopped node is deleted while it is down; once the node has caught
 * up its data is gone. (Which path tells it, the log or the snapshot, depends on what the leader
 * still holds when it returns; the in-process reconciler tests cover the snapshot path on its own.)
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { eventually } from '../helpers/eventually.js';
import { type TestCluster, startLocalCluster } from '../helpers/local-cluster.js';
import { type NodeMetrics, nodeMetrics } from '../helpers/node-text.js';

const topicCount = 21_000;
const snapshotBytesMin = 5 * 1024 * 1024;

async function metrics(addr: string): Promise<NodeMetrics> {
  const m = await nodeMetrics(addr, 15_000);
  if (m === null) throw new Error(`${addr} did not answer METRICS`);
  return m;
}

async function leaderOf(cluster: TestCluster, live: readonly number[]): Promise<number> {
  return eventually('one leader over three voters', async () => {
    const all = await Promise.all(live.map((i) => metrics(cluster.nodes[i]!.clientAddr)));
    const leader = all[0]!.current_leader;
    if (leader === null || !all.every((m) => m.current_leader === leader)) return undefined;
    if (!all.every((m) => m.membership_config.voters.length === 3)) return undefined;
    return leader;
  });
}

test.serial(
  'a follower restarted after compaction catches up by a chunked snapshot above 5 MiB and votes again',
  async (t) => {
    const started = Date.now();
    const phase = (what: string): void => t.log(`${what} at ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const cluster = await startLocalCluster({ nodeCount: 3 });
    try {
      const leaderId = await leaderOf(cluster, [0, 1, 2]);
      const leader = leaderId - 1;
      const [lagging, other] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
      const client = new WalrusClient({ nodes: [cluster.nodes[leader]!.clientAddr] });
      t.teardown(() => client.close());
      // A topic whose data lives on the node about to miss its deletion.
      let gone = '';
      for (let i = 0; gone === '' && i < 64; i++) {
        const created = await client.createTopic(`gone${i}`);
        if (created.topic.leaderNodeId === lagging + 1) gone = `gone${i}`;
      }
      t.not(gone, '', 'some topic is placed on the node to stop');
      await client.append(gone, [{ value: Buffer.from('on the lagging node') }]);
      const goneDir = path.join(cluster.dataDir, `node_${lagging + 1}`, 'user_data', 'topics', gone);
      t.true(fs.existsSync(goneDir), goneDir);
      await cluster.kill(lagging, 'SIGTERM');
      await client.deleteTopic(gone);
      phase(`formed; node ${lagging + 1} stopped; topic ${gone} deleted meanwhile`);

      const pad = 'x'.repeat(193);
      let next = 0;
      await Promise.all(
        Array.from({ length: 256 }, async () => {
          while (next < topicCount) {
            const i = next++;
            await client.createTopic(`${String(i).padStart(6, '0')}-${pad}`);
          }
        }),
      );
      phase(`${topicCount} topics created`);

      const leaderAddr = cluster.nodes[leader]!.clientAddr;
      const snapshotFile = path.join(cluster.dataDir, `node_${leaderId}`, 'raft_meta', 'snapshot.bin');
      const snapshotBytes = await eventually('the leader to compact past 20,000 entries', async () => {
        const size = fs.statSync(snapshotFile).size;
        return size > snapshotBytesMin ? size : undefined;
      });
      t.true(snapshotBytes > snapshotBytesMin, `snapshot.bin is ${snapshotBytes} bytes`);
      phase(`leader snapshot ${(snapshotBytes / 1e6).toFixed(1)} MB`);

      // The others are paused while it starts, so it has finished its start-up reconciliation
      // (it still knows the deleted topic then) before the snapshot reaches it.
      cluster.nodes[leader]!.process!.kill('SIGSTOP');
      cluster.nodes[other]!.process!.kill('SIGSTOP');
      try {
        await cluster.startNode(lagging);
        await eventually(`node ${lagging + 1} to finish its start-up`, async () =>
          cluster.nodes[lagging]!.logTail.includes('Client listener bound') ? true : undefined,
        );
        t.true(fs.existsSync(goneDir), 'kept at start-up: its own log still holds the topic');
      } finally {
        cluster.nodes[leader]!.process!.kill('SIGCONT');
        cluster.nodes[other]!.process!.kill('SIGCONT');
      }
      const laggingAddr = cluster.nodes[lagging]!.clientAddr;
      const target = (await metrics(leaderAddr)).last_applied;
      const caughtUp = await eventually(
        `node ${lagging + 1} to apply up to ${target}`,
        async () => {
          const m = await nodeMetrics(laggingAddr);
          return m !== null && m.last_applied >= target ? m : undefined;
        },
        45_000,
      );
      t.true(caughtUp.last_applied >= target);
      t.deepEqual(caughtUp.membership_config.voters, [1, 2, 3]);
      // It came by the chunked path, counted on both sides. The sender is whichever node led then:
      // the paused leader may have lost its leadership to the other node when they were resumed
      // (seen under load), and that node then sent the snapshot.
      type Transfer = NodeMetrics & { snapshot_transfer: Record<string, number> };
      const senders = [
        (await metrics(leaderAddr)) as Transfer,
        (await metrics(cluster.nodes[other]!.clientAddr)) as Transfer,
      ].map((m) => m.snapshot_transfer);
      const sentSum = (key: string): number => senders.reduce((sum, s) => sum + (s[key] ?? 0), 0);
      const got = caughtUp as Transfer;
      t.true(sentSum('sends_succeeded') >= 1, JSON.stringify(senders));
      t.true(sentSum('bytes_sent') > snapshotBytesMin, JSON.stringify(senders));
      t.true(got.snapshot_transfer.receives_completed! >= 1, JSON.stringify(got.snapshot_transfer));
      t.log(`senders: ${JSON.stringify(senders)}`);
      await eventually(`node ${lagging + 1} to delete the data of ${gone}`, async () =>
        fs.existsSync(goneDir) ? undefined : true,
      );
      phase(`node ${lagging + 1} applied ${caughtUp.last_applied} (leader was at ${target})`);

      // Voting again: with the other follower down, a change commits only with the restarted node.
      await cluster.kill(other, 'SIGTERM');
      const created = await eventually('a topic created with the other follower down', async () => {
        try {
          return await client.createTopic('after-snapshot', undefined, { timeoutMs: 10_000 });
        } catch {
          return undefined;
        }
      });
      t.true(created.created);
      const applied = await eventually(`node ${lagging + 1} to apply the new topic`, async () => {
        const m = await nodeMetrics(laggingAddr);
        const l = await nodeMetrics(leaderAddr);
        return m !== null && l !== null && m.last_applied >= l.last_applied && m.last_applied > target
          ? m
          : undefined;
      });
      t.true(applied.last_applied > target);
      phase('a change committed with the restarted node as the second vote');
    } catch (error) {
      for (const n of cluster.nodes)
        t.log(`--- node ${n.spec.nodeId} log tail ---\n${n.logTail.slice(-3000)}`);
      throw error;
    } finally {
      await cluster.destroy();
    }
  },
);
