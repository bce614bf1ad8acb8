/**
 * Node identity on real processes: a voter whose data directory was wiped can neither rejoin under
 * its old identity nor be counted as a voter (nor pull its old peers into a cluster of its own when
 * started without --join), until the operator removes the old member; then it rejoins and catches up.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { eventually } from '../helpers/eventually.js';
import { type TestCluster, cliBin, startLocalCluster } from '../helpers/local-cluster.js';
import { nodeMetrics, textCommands } from '../helpers/node-text.js';

const text = (addr: string, ...commands: string[]): Promise<string[]> => textCommands(addr, commands);

async function metrics(addr: string) {
  const m = await nodeMetrics(addr, 15_000);
  if (m === null) throw new Error(`${addr} did not answer METRICS`);
  return m;
}

/** Waits until the listed nodes report one leader and exactly `voters`. */
async function converged(cluster: TestCluster, voters: number[], among: number[]): Promise<number> {
  return eventually(`nodes ${among} agree on voters ${voters} and one leader`, async () => {
    const all = await Promise.all(among.map((id) => metrics(cluster.nodes[id - 1]!.clientAddr)));
    const leader = all[0]!.current_leader;
    if (leader === null || !all.every((m) => m.current_leader === leader)) return undefined;
    if (!all.every((m) => JSON.stringify(m.membership_config.voters) === JSON.stringify(voters)))
      return undefined;
    return leader;
  });
}

function cli(addr: string, ...args: string[]) {
  return spawnSync(process.execPath, [cliBin, '--addr', addr, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

/** The node at `index` with its --join replaced (null: start it as a bootstrap node). */
function withJoin(cluster: TestCluster, index: number, join: string | null): void {
  const node = cluster.nodes[index]!;
  cluster.nodes[index] = { ...node, spec: { ...node.spec, join } };
}

async function exitCodeOf(cluster: TestCluster, index: number): Promise<number> {
  return eventually(`node ${index + 1} to exit`, async () => {
    const child = cluster.nodes[index]!.process;
    return child?.exitCode ?? undefined;
  });
}

async function withCluster(t: ExecutionContext, run: (cluster: TestCluster) => Promise<void>): Promise<void> {
  const cluster = await startLocalCluster({ nodeCount: 3 });
  try {
    await run(cluster);
  } catch (error) {
    for (const n of cluster.nodes) t.log(`--- node ${n.spec.nodeId} log tail ---\n${n.logTail.slice(-4000)}`);
    throw error;
  } finally {
    await cluster.destroy();
  }
}

test.serial(
  'a wiped voter is refused under its old identity and never counted, then removed, rejoins and catches up',
  async (t) => {
    await withCluster(t, async (cluster) => {
      await converged(cluster, [1, 2, 3], [1, 2, 3]);
      const n1 = cluster.nodes[0]!;
      t.deepEqual(await text(n1.clientAddr, 'REGISTER before-wipe'), ['OK']);
      const oldJoin = cluster.nodes[2]!.spec.join;

      // Node 3 loses its data directory and comes back with its old command line (--join node 1).
      await cluster.kill(2, 'SIGKILL');
      fs.rmSync(path.join(cluster.dataDir, 'node_3'), { recursive: true, force: true });
      // The node binds its ports before it asks to join: it may exit before or after they listen.
      await t.throwsAsync(cluster.startNode(2), { message: /exited before (listening|serving)/ });
      t.not(await exitCodeOf(cluster, 2), 0, 'the refused join exits non-zero');
      const refusal = cluster.nodes[2]!.logTail;
      t.regex(refusal, /IDENTITY_MISMATCH/);
      t.regex(refusal, /walrus-cli remove-node 3/);
      t.regex(refusal, /--join/);

      // Started without --join it may run alone, as a cluster of one; its old peers refuse it by
      // cluster id, so it never counts as one of their voters: with node 2 down, node 1 has no quorum.
      fs.rmSync(path.join(cluster.dataDir, 'node_3'), { recursive: true, force: true });
      withJoin(cluster, 2, null);
      await cluster.startNode(2);
      const alone = await eventually('the wiped node to lead a cluster of its own', async () => {
        const m = await metrics(cluster.nodes[2]!.clientAddr);
        return m.state === 'Leader' ? m : undefined;
      });
      t.deepEqual(alone.membership_config.voters, [3]);
      await cluster.kill(1, 'SIGKILL');
      await eventually('node 1 to be without a leader (only itself of {1, 2, 3} counts)', async () => {
        const m = await metrics(n1.clientAddr);
        return m.current_leader === null && m.state !== 'Leader' ? m : undefined;
      });
      t.deepEqual((await metrics(n1.clientAddr)).membership_config.voters, [1, 2, 3]);
      await eventually('node 1 to log that it refuses the other cluster', async () =>
        /IDENTITY_MISMATCH/.test(n1.logTail) ? true : undefined,
      );

      // The operator's way back: node 2 returns, the old member 3 is removed, node 3 is wiped and
      // started with --join, re-added as a learner, promoted, and catches up.
      await cluster.startNode(1);
      await converged(cluster, [1, 2, 3], [1, 2]);
      await cluster.kill(2, 'SIGTERM');
      const removed = cli(n1.clientAddr, 'remove-node', '3');
      t.is(removed.status, 0, removed.stderr);
      t.regex(removed.stdout, /OK node 3 removed/);
      await converged(cluster, [1, 2], [1, 2]);
      fs.rmSync(path.join(cluster.dataDir, 'node_3'), { recursive: true, force: true });
      withJoin(cluster, 2, oldJoin);
      // The removed member's addresses are dropped right after the removal commits; until then a
      // join under the new identity is refused like the one above, so retry the start.
      await eventually(
        'node 3 to rejoin under its new identity',
        async () => {
          try {
            await cluster.startNode(2);
            return true;
          } catch {
            fs.rmSync(path.join(cluster.dataDir, 'node_3'), { recursive: true, force: true });
            return undefined;
          }
        },
        60_000,
      );
      const leader = await converged(cluster, [1, 2, 3], [1, 2, 3]);
      const n3 = cluster.nodes[2]!;
      t.deepEqual(await text(n3.clientAddr, 'REGISTER after-rejoin'), ['OK']);
      const target = (await metrics(cluster.nodes[leader - 1]!.clientAddr)).last_applied;
      await eventually('node 3 to apply everything', async () => {
        const m = await metrics(n3.clientAddr);
        return m.last_applied >= target ? m : undefined;
      });
      const [state] = await text(n3.clientAddr, 'STATE before-wipe');
      t.regex(state!, /^\{"topic":"before-wipe"/);
      // Counted again: with node 2 down, nodes 1 and 3 still commit.
      await cluster.kill(1, 'SIGKILL');
      const created = await eventually('a commit by nodes 1 and 3', async () => {
        const [r] = await text(n1.clientAddr, 'REGISTER with-1-and-3');
        return r === 'OK' ? r : undefined;
      });
      t.is(created, 'OK');
    });
  },
);
