/**
 * Runs whole-node seeds from the command line (debugging and the soak):
 *   node dist/test/sim/whole-node/run-one.js --seed 7 [--ms 12000] [--trace] [--bug reconcile|barrier|snapshot]
 */
import { parseArgs } from 'node:util';
import { type WholeNodeOptions, runWholeNodeSim } from './whole-node-sim.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    ms: { type: 'string' },
    trace: { type: 'boolean', default: false },
    bug: { type: 'string' },
    from: { type: 'string' },
    seeds: { type: 'string' },
  },
});
const bugs: Record<string, Partial<WholeNodeOptions>> = {
  reconcile: { bugs: { skipReconcileOnSnapshot: true } },
  barrier: { bugs: { noReadBarrier: true } },
  snapshot: { bugs: { snapshotAsOneMessage: true }, overrides: { bloatTopics: 14_000 } },
  bloat: { overrides: { bloatTopics: 14_000 } },
};
const extra = values.bug === undefined ? {} : bugs[values.bug];
if (extra === undefined) throw new Error(`unknown --bug ${values.bug}`);
const seed = Number(values.seed ?? process.env['SEED'] ?? 1);
const faultMs = Number(values.ms ?? process.env['SIM_MS'] ?? 12_000);
const r = await runWholeNodeSim({
  seed,
  faultMs,
  ...extra,
  ...(values.trace ? { trace: (line: string) => console.log(line) } : {}),
});
console.log(JSON.stringify({ seed, ok: r.ok, derived: r.derived, stats: r.stats }, null, 1));
if (!r.ok) console.log(r.violation);
process.exit(r.ok ? 0 : 1);
