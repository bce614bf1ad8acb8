/**
 * Runs whole-node seeds from the command line (debugging and the soak):
 *   node dist/test/sim/whole-node/run-one.js --seed 7 [--ms 12000] [--trace] [--bug reconcile|barrier|snapshot]
 */
import { parseArgs } from 'node:util';
import { runWholeNodeSim } from './whole-node-sim.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    ms: { type: 'string' },
    trace: { type: 'boolean', default: false },
  },
});
const seed = Number(values.seed ?? process.env['SEED'] ?? 1);
const faultMs = Number(values.ms ?? process.env['SIM_MS'] ?? 12_000);
const r = await runWholeNodeSim({
  seed,
  faultMs,
  ...(values.trace ? { trace: (line: string) => console.log(line) } : {}),
});
console.log(JSON.stringify({ seed, ok: r.ok, derived: r.derived, stats: r.stats }, null, 1));
if (!r.ok) console.log(r.violation);
process.exit(r.ok ? 0 : 1);
