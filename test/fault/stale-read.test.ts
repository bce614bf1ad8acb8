/**
 * A deposed Raft leader never answers from stale state. Each round pauses the Raft leader
 * (SIGSTOP), commits a consumer cursor through the leader the others elect, sends a consumerGet to
 * the paused node (it waits in its socket), and resumes it: the answer must be the new cursor or
 * an error, never the cursor from before the pause. Leader-only reads confirm leadership first
 * (ReadIndex); before, the resumed node answered the old cursor in some rounds.
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { startLocalCluster } from '../helpers/local-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { nodeMetrics as metrics } from '../helpers/node-text.js';

const roundCount = 6;

test.serial('a resumed, deposed Raft leader never answers an old cursor', async (t) => {
  const cluster = await startLocalCluster({ nodeCount: 3 });
  const clients: WalrusClient[] = [];
  try {
    const leaderOf = (skip: number) =>
      eventually('one leader that every other node follows', async () => {
        const ms = await Promise.all(
          cluster.nodes.filter((n) => n.spec.nodeId !== skip).map((n) => metrics(n.clientAddr)),
        );
        const l = ms[0]?.current_leader;
        return l &&
          l !== skip &&
          ms.every((m) => m?.current_leader === l && m.membership_config.voters.length === 3)
          ? l
          : undefined;
      });
    const nodeOf = (id: number) => cluster.nodes.find((n) => n.spec.nodeId === id)!;
    const clientOf = (id: number) => {
      const c = new WalrusClient({
        nodes: [nodeOf(id).clientAddr],
        retryCountMax: 0,
        requestTimeoutMs: 15_000,
      });
      clients.push(c);
      return c;
    };
    let leader = await leaderOf(0);
    const setup = clientOf(leader);
    // A cursor commit checks the topic's end with the leader of its active segment: each round
    // uses a topic whose segment leader is not the paused node.
    const ledBy = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const created = await setup.createTopic(`cursors${i}`);
      ledBy.set(`cursors${i}`, created.topic.leaderNodeId);
      await setup.append(
        `cursors${i}`,
        Array.from({ length: 2 * roundCount + 2 }, () => ({ value: Buffer.from('r') })),
      );
      await setup.consumerCommit(`cursors${i}`, 'c', 1);
    }
    const answers: string[] = [];
    for (let round = 0; round < roundCount; round++) {
      const paused = leader;
      const topic = [...ledBy].find(([, l]) => l !== paused)![0];
      const before = (await clientOf(paused).consumerGet(topic, 'c')).offset;
      const asker = clientOf(paused);
      await asker.ping();
      nodeOf(paused).process!.kill('SIGSTOP');
      const next = await leaderOf(paused);
      const fresh = before + 1;
      await eventually('a cursor commit through the new leader', async () => {
        await clientOf(next).consumerCommit(topic, 'c', fresh);
        return true;
      });
      // Sent while the old leader is paused: it is waiting in its socket when the node resumes.
      const asked = asker.consumerGet(topic, 'c').then(
        (c) => String(c.offset),
        (e: { code?: string }) => e.code ?? 'error',
      );
      nodeOf(paused).process!.kill('SIGCONT');
      const answer = await asked;
      answers.push(answer);
      t.not(
        answer,
        String(before),
        `round ${round}: node ${paused} answered the cursor from before its pause`,
      );
      leader = await leaderOf(0);
    }
    t.log(`answers of the resumed leaders: ${answers.join(', ')}`);
  } finally {
    for (const c of clients) await c.close();
    for (const n of cluster.nodes) n.process?.kill('SIGCONT');
    await cluster.destroy();
  }
});
