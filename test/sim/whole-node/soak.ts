/**
 * Whole-node soak and replay, on demand:
 *   node dist/test/sim/whole-node/soak.js --seeds 1000 [--from 1] [--ms 12000] [--profile soak|quick] [--bug snapshot|reconcile|barrier|removal]
 *   node dist/test/sim/whole-node/soak.js --seed 7 [--profile quick] [--trace]     (one run; --trace prints every log line and client request)
 * Env fallbacks: SIM_SEEDS, SIM_FROM, SIM_MS, SIM_PROFILE, SEED (`npm run soak`, `npm run sim:whole`).
 * The profile decides the schedules and the default fault phase (soak: 12 s; quick: npm test's, 5 s).
 * Prints each failing seed with its replay command and the totals (seeds, events, events/s,
 * failures); exits 1 if any seed failed.
 */
import { parseArgs } from 'node:util';
import {
  type Profile,
  type WholeNodeOptions,
  profileFaultMs,
  replayCommand,
  runWholeNodeSim,
} from './whole-node-sim.js';
import { bugOptions } from './bugs.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    from: { type: 'string' },
    ms: { type: 'string' },
    bug: { type: 'string' },
    profile: { type: 'string' },
    trace: { type: 'boolean', default: false },
  },
});
const profile = (values.profile ?? process.env['SIM_PROFILE'] ?? 'soak') as Profile;
if (!(profile in profileFaultMs)) {
  console.error(`unknown profile ${profile}; one of ${Object.keys(profileFaultMs).join(', ')}`);
  process.exit(2);
}
const faultMs = Number(values.ms ?? process.env['SIM_MS'] ?? profileFaultMs[profile]);
const extra: Partial<WholeNodeOptions> | undefined = values.bug === undefined ? {} : bugOptions[values.bug];
if (extra === undefined) {
  console.error(`unknown --bug ${values.bug}; one of ${Object.keys(bugOptions).join(', ')}`);
  process.exit(2);
}
const single = values.seed ?? process.env['SEED'];

if (single !== undefined) {
  const seed = Number(single);
  const r = await runWholeNodeSim({
    seed,
    faultMs,
    profile,
    ...extra,
    ...(values.trace ? { trace: (line: string) => console.log(line) } : {}),
  });
  console.log(JSON.stringify({ seed, ok: r.ok, derived: r.derived, stats: r.stats }, null, 1));
  if (!r.ok) console.log(r.violation);
  process.exit(r.ok ? 0 : 1);
}

const from = Number(values.from ?? process.env['SIM_FROM'] ?? 1);
const count = Number(values.seeds ?? process.env['SIM_SEEDS'] ?? 200);
const started = performance.now();
let failed = 0;
let events = 0;
let simMs = 0;
/** What the schedules did, summed (faults injected, checks made). */
const totals: Record<string, number> = {};
for (let seed = from; seed < from + count; seed++) {
  const r = await runWholeNodeSim({ seed, faultMs, profile, ...extra });
  events += r.stats.events;
  simMs += r.stats.simMs;
  for (const [k, v] of Object.entries({ ...r.stats, ...r.stats.replication }))
    if (typeof v === 'number' && k !== 'realMs' && k !== 'simMs' && k !== 'events')
      totals[k] = (totals[k] ?? 0) + v;
  if (!r.ok) {
    failed++;
    const replay =
      values.bug === undefined
        ? replayCommand(seed, faultMs, profile)
        : `node dist/test/sim/whole-node/soak.js --seed ${seed} --ms ${faultMs} --profile ${profile} --bug ${values.bug}`;
    console.log(`FAIL seed ${seed}: ${r.violation?.split('\n')[0]}\n  replay: ${replay}`);
  }
  if ((seed - from + 1) % 100 === 0) {
    const s = (performance.now() - started) / 1000;
    console.log(`… ${seed - from + 1}/${count} seeds, ${failed} failed, ${Math.round(events / s)} events/s`);
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `whole-node soak (${profile}): ${count} seeds from ${from}, ${faultMs} simulated ms of faults each: ${failed} failed; ${events} events, ${(simMs / 1000).toFixed(0)} simulated s in ${seconds.toFixed(1)} s (${Math.round(events / seconds)} events/s)`,
);
console.log(`totals: ${JSON.stringify(totals)}`);
process.exit(failed > 0 ? 1 : 0);
