/**
 * Real network partitions (test/helpers/netns-cluster.ts: a namespace per node, nftables drops):
 * a Raft leader cut off from its followers is replaced and acknowledges nothing while cut off;
 * after healing it follows the new leader and learns what was committed without it. One-way
 * partitions (a lossy link; a leader that sends but hears nothing) never give a term two leaders,
 * the cluster keeps committing, and every acknowledged change is on every node after healing.
 */
import test, { type ExecutionContext } from 'ava';
import { eventually } from '../helpers/eventually.js';
import { NetnsCluster } from '../helpers/netns-cluster.js';
import { checkLog } from '../helpers/log-checker.js';
import type { NodeMetrics } from '../helpers/node-text.js';

async function withCluster(t: ExecutionContext, run: (c: NetnsCluster) => Promise<void>): Promise<void> {
  const cluster = await NetnsCluster.start({ nodeCount: 3 });
  try {
    await run(cluster);
  } catch (error) {
    for (const n of cluster.nodes) t.log(`--- node ${n.nodeId} ---\n${n.logTail.slice(-2000)}`);
    throw error;
  } finally {
    await cluster.destroy();
  }
}

async function allMetrics(cluster: NetnsCluster): Promise<(NodeMetrics | null)[]> {
  return Promise.all(cluster.nodes.map((_, i) => cluster.metrics(i)));
}

/** Waits for three voters that agree on one leader; returns its index. */
async function settled(cluster: NetnsCluster): Promise<number> {
  return eventually('one leader of three voters', async () => {
    const ms = await allMetrics(cluster);
    const leader = ms[0]?.current_leader ?? null;
    if (leader === null || !ms.every((m) => m?.current_leader === leader)) return undefined;
    if (!ms.every((m) => m?.membership_config.voters.length === 3)) return undefined;
    return leader - 1;
  });
}

/** No term has two nodes that each say they lead it. */
function oneLeaderPerTerm(ms: readonly (NodeMetrics | null)[]): boolean {
  const leaders = ms.filter((m) => m?.state === 'Leader').map((m) => m!.current_term);
  return new Set(leaders).size === leaders.length;
}

test.serial(
  'a leader cut off from both followers is replaced, acknowledges nothing, and catches up after healing',
  async (t) => {
    await withCluster(t, async (cluster) => {
      const old = await settled(cluster);
      const majority = [0, 1, 2].filter((i) => i !== old);
      cluster.isolate(old);
      // The cut-off leader cannot commit: a topic asked of it is never acknowledged.
      const [cutOffReply] = await cluster.text(old, ['REGISTER while-cut-off'], 4_000);
      t.not(cutOffReply, 'OK', `the cut-off leader answered ${cutOffReply}`);
      // The majority elects a new leader and keeps committing.
      const fresh = await eventually('a new leader on the majority side', async () => {
        const ms = await Promise.all(majority.map((i) => cluster.metrics(i)));
        const leader = ms[0]?.current_leader ?? null;
        return leader !== null && leader - 1 !== old && ms.every((m) => m?.current_leader === leader)
          ? leader - 1
          : undefined;
      });
      t.true(majority.includes(fresh));
      const [made] = await eventually('a topic made on the majority side', async () => {
        const replies = await cluster.text(majority[0]!, ['REGISTER during-partition']);
        return replies[0] === 'OK' ? replies : undefined;
      });
      t.is(made, 'OK');
      t.true(oneLeaderPerTerm(await allMetrics(cluster)));
      cluster.heal();
      // The old leader follows the new one and learns the topic; the one it never acknowledged is gone.
      const back = await eventually('the old leader to follow', async () => {
        const m = await cluster.metrics(old);
        return m !== null && m.current_leader === fresh + 1 && m.state !== 'Leader' ? m : undefined;
      });
      t.is(back.current_leader, fresh + 1);
      const [state] = await eventually('the topic on the old leader', async () => {
        const replies = await cluster.text(old, ['STATE during-partition']);
        return replies[0]?.startsWith('{') ? replies : undefined;
      });
      t.regex(state!, /"topic":"during-partition"/);
      const [lost] = await cluster.text(fresh, ['STATE while-cut-off']);
      t.regex(
        lost!,
        /^ERR TOPIC_NOT_FOUND/,
        'the change the cut-off leader never acknowledged did not survive',
      );
      t.true(oneLeaderPerTerm(await allMetrics(cluster)));
    });
  },
);

test.serial(
  'one-way partitions (a lossy link, then a deaf leader) never give a term two leaders; the cluster keeps committing',
  async (t) => {
    await withCluster(t, async (cluster) => {
      const committed: string[] = [];
      /** Ten rounds under the current rules: one leader per term, and appends through whoever leads. */
      const rounds = async (phase: string): Promise<void> => {
        for (let round = 0; round < 10; round++) {
          const ms = await allMetrics(cluster);
          t.true(
            oneLeaderPerTerm(ms),
            `${phase} round ${round}: ${JSON.stringify(ms.map((m) => [m?.state, m?.current_term]))}`,
          );
          const target = ms.findIndex((m) => m?.state === 'Leader');
          if (target >= 0) {
            const [r] = await cluster.text(target, [`REGISTER ${phase}-${round}`], 3_000);
            if (r === 'OK') committed.push(`${phase}-${round}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      };
      const leader = await settled(cluster);
      const [a, b] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
      // Phase 1: the leader no longer hears follower a (a still hears it), and b no longer hears a.
      cluster.drop(leader, a);
      cluster.drop(b, a);
      await rounds('lossy');
      t.true(committed.length > 0, 'something committed while the partition held');
      cluster.heal();
      const second = await settled(cluster);
      // Phase 2: a deaf leader: it still sends, but hears neither follower. It must step down, the
      // followers elect one of themselves, and the deaf node never unseats the new leader.
      const before = committed.length;
      for (const other of [0, 1, 2].filter((i) => i !== second)) cluster.drop(second, other);
      const replaced = await eventually('a new leader beside the deaf one', async () => {
        const ms = await allMetrics(cluster);
        const leaders = ms.flatMap((m, i) => (m?.state === 'Leader' ? [i] : []));
        return leaders.length === 1 && leaders[0] !== second ? leaders[0] : undefined;
      });
      t.not(replaced, second);
      await rounds('deaf');
      t.true(committed.length > before, 'the new leader commits while the old one is deaf');
      cluster.heal();
      await settled(cluster);
      t.true(oneLeaderPerTerm(await allMetrics(cluster)));
      // Every acknowledged topic is on every node after healing.
      for (let i = 0; i < 3; i++) {
        for (const topic of committed) {
          const [state] = await eventually(`${topic} on node ${i + 1}`, async () => {
            const replies = await cluster.text(i, [`STATE ${topic}`]);
            return replies[0]?.startsWith('{') ? replies : undefined;
          });
          t.regex(state!, new RegExp(`"topic":"${topic}"`));
        }
      }
    });
  },
);

for (const victim of ['the Raft leader', 'a follower', 'a follower (then killed -9)'] as const) {
  test.serial(
    `appends across rollovers while ${victim} is cut off: every acknowledged record once at its offset, nothing unexpected`,
    async (t) => {
      const cluster = await NetnsCluster.start({ nodeCount: 3, env: { WALRUS_MAX_SEGMENT_ENTRIES: '25' } });
      try {
        const leader = await settled(cluster);
        await eventually('the topic', async () => {
          const [r] = await cluster.text(leader, ['REGISTER history']);
          return r === 'OK' ? r : undefined;
        });
        const untilMs = Date.now() + 7_000;
        const writers = [0, 1, 2, 3].map((w) =>
          cluster.appends(
            'history',
            Array.from({ length: 20_000 }, (_, i) => `w${w}-${i}`),
            untilMs,
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        // A follower leads some of the segments the rollovers hand round; the Raft leader seals them.
        const cut = victim === 'the Raft leader' ? leader : (leader + 1) % 3;
        cluster.isolate(cut);
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        if (victim === 'a follower (then killed -9)') await cluster.kill(cut);
        cluster.heal();
        if (victim === 'a follower (then killed -9)') await cluster.startNode(cut);
        const attempts = (await Promise.all(writers)).flat();
        await settled(cluster);
        const read = await eventually('a full read after healing', () => cluster.readAll('history'));
        const check = checkLog(attempts, read.records);
        t.log(
          `${check.acknowledged} acknowledged, ${check.unknown} unknown (${check.unknownPresent} landed), ${read.records.length} records read, end ${read.endOffset}`,
        );
        t.true(check.acknowledged > 100, 'the writers made progress');
        t.deepEqual(check.lost.slice(0, 10), [], `${check.lost.length} acknowledged records lost`);
        t.deepEqual(check.misplaced.slice(0, 10), []);
        t.deepEqual(check.duplicated.slice(0, 10), []);
        t.deepEqual(check.unexpected.slice(0, 10), []);
        t.deepEqual(check.holes.slice(0, 10), []);
        t.is(read.records.length, read.endOffset - (read.records[0]?.offset ?? 0));
      } catch (error) {
        for (const n of cluster.nodes) t.log(`--- node ${n.nodeId} ---\n${n.logTail.slice(-2000)}`);
        throw error;
      } finally {
        await cluster.destroy();
      }
    },
  );
}
