/**
 * The whole-node simulation as part of `npm test`: WHOLE_SEEDS seeds (default 40) with SIM_MS
 * simulated ms of faults each, every invariant checked as the run goes, then liveness. `SEED=n`
 * replays one run (as does `SEED=n npm run sim:whole`); every failure prints its replay command
 * and the seed-derived options.
 */
import test from 'ava';
import { faultMsDefault, replayCommand, runWholeNodeSim, type WholeNodeResult } from './whole-node-sim.js';

const seedsDefault = 40;
const chunkSeedCount = 10;
/** The seeds of npm test start here (the soak starts at 1): different schedules than a soak's first. */
const firstSeed = 100_001;

const faultMs = Number(process.env['SIM_MS'] ?? faultMsDefault);
const onlySeed = process.env['SEED'];

function explain(r: WholeNodeResult): string {
  return [
    `whole-node simulation failed for seed ${r.seed}: ${r.violation}`,
    `derived options: ${JSON.stringify(r.derived)}`,
    `replay: ${replayCommand(r.seed, faultMs)}`,
  ].join('\n');
}

if (onlySeed !== undefined) {
  const seed = Number(onlySeed);
  test.serial(`whole-node: replays seed ${seed} (${faultMs} ms of faults)`, async (t) => {
    const r = await runWholeNodeSim({ seed, faultMs });
    t.log(JSON.stringify(r.stats));
    t.true(r.ok, r.ok ? '' : explain(r));
  });
} else {
  const seedCount = Number(process.env['WHOLE_SEEDS'] ?? seedsDefault);
  for (let lo = firstSeed; lo < firstSeed + seedCount; lo += chunkSeedCount) {
    const hi = Math.min(firstSeed + seedCount - 1, lo + chunkSeedCount - 1);
    test.serial(`whole-node seeds ${lo}..${hi} keep every invariant and stay live`, async (t) => {
      let clientOps = 0;
      for (let seed = lo; seed <= hi; seed++) {
        const r = await runWholeNodeSim({ seed, faultMs });
        if (!r.ok) return t.fail(explain(r));
        clientOps += r.stats.clientOps;
      }
      t.true(clientOps > 0, 'clients were served');
    });
  }
}
