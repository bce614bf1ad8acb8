/**
 * What the scripted whole-node scenarios share: the node settings they run with, and the two ways
 * a script advances simulated time (until a condition holds; until a client request settles),
 * each bounded so that a scenario that never gets there fails with what it waited for.
 */
import type { SimCluster } from './sim-cluster.js';
import type { NodeSettings } from './sim-node.js';

export const scenarioSettings: NodeSettings = {
  tickMs: 50,
  electionTick: 10,
  segmentEntryCountMax: 100,
  compactEntryCount: 10_000,
  monitorCheckMs: 500,
  bugs: {},
};

/** Simulated ms a scripted step may take before the scenario fails (by default). */
export const scenarioStepMs = 30_000;

/** Runs the simulation until `holds()`; throws naming `what` after `ms` simulated ms. */
export async function until(
  c: SimCluster,
  what: string,
  holds: () => boolean,
  ms = scenarioStepMs,
): Promise<void> {
  const deadline = c.world.now + ms;
  await c.world.run({ untilTime: deadline, stop: holds });
  if (!holds()) throw new Error(`not reached within ${ms} simulated ms: ${what}`);
}

/** Runs the simulation until `work` settles (a client request, say) and returns its value. */
export async function drive<T>(
  c: SimCluster,
  what: string,
  work: Promise<T>,
  ms = scenarioStepMs,
): Promise<T> {
  let settled: { value: T } | null = null;
  void work.then((value) => {
    settled = { value };
  });
  await until(c, what, () => settled !== null, ms);
  return (settled as unknown as { value: T }).value;
}

/** Whether node `id` has recovered its topics and serves clients. */
export const serving = (c: SimCluster, id: number): boolean => c.node(id).running?.serving === true;

/** Boots `ids` in order (the first bootstraps, the others join) and waits until all are voters. */
export async function startCluster(
  c: SimCluster,
  ids: readonly number[],
  ms = scenarioStepMs,
): Promise<void> {
  c.onCrash = () => {};
  for (const id of ids) {
    c.addNode(id, id !== ids[0], 0);
    c.boot(id);
    await until(c, `node ${id} serves`, () => serving(c, id), ms);
  }
  await until(
    c,
    'every node is a voter',
    () => {
      const voters = c.node(ids[0]!).running?.raft?.status().voters ?? [];
      return ids.every((id) => voters.includes(id));
    },
    ms,
  );
}
