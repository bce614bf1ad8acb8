/**
 * Registers npm test's whole-node seeds with ava (see whole-node-sim.test.ts): the seeds of one
 * part (`part` of `parts`, interleaved by chunk), in chunks of chunkSeedCount per test; the known
 * failures of that part (known-failures.ts) as `test.failing`, one each; and (part 1, or 0 when
 * there is one part) the seeds beyond the range that found defects since fixed.
 */
import test from 'ava';
import { fixedDefectSeeds, fixedDefectSoakSeeds, knownDefects, knownFailures } from './known-failures.js';
import { type WholeNodeResult, profileFaultMs, replayCommand, runWholeNodeSim } from './whole-node-sim.js';

const profile = 'quick';
/** npm test's seed count (at least 200: the issue asks for it). */
const seedsDefault = 200;
const chunkSeedCount = 10;
/** The seeds of npm test start here (the soak starts at 1): different schedules than a soak's first. */
export const firstSeed = 100_001;

const faultMs = Number(process.env['SIM_MS'] ?? profileFaultMs[profile]);
const onlySeed = process.env['SEED'];

function explain(r: WholeNodeResult): string {
  return [
    `whole-node simulation failed for seed ${r.seed}: ${r.violation}`,
    `derived options: ${JSON.stringify(r.derived)}`,
    `replay: ${replayCommand(r.seed, faultMs, profile)}`,
  ].join('\n');
}

export function registerWholeNodeSeeds(part: number, parts: number): void {
  if (onlySeed !== undefined) {
    if (part !== 0) return;
    const seed = Number(onlySeed);
    test.serial(`whole-node: replays seed ${seed} (${profile}, ${faultMs} ms of faults)`, async (t) => {
      const r = await runWholeNodeSim({ seed, faultMs, profile });
      t.log(JSON.stringify(r.stats));
      t.true(r.ok, r.ok ? '' : explain(r));
    });
    return;
  }
  const seedCount = Number(process.env['WHOLE_SEEDS'] ?? seedsDefault);
  const last = firstSeed + seedCount - 1;
  for (let lo = firstSeed + part * chunkSeedCount; lo <= last; lo += parts * chunkSeedCount) {
    const hi = Math.min(last, lo + chunkSeedCount - 1);
    test.serial(`whole-node seeds ${lo}..${hi} keep every invariant and stay live`, async (t) => {
      let clientOps = 0;
      for (let seed = lo; seed <= hi; seed++) {
        if (knownFailures.has(seed)) continue;
        const r = await runWholeNodeSim({ seed, faultMs, profile });
        if (!r.ok) return t.fail(explain(r));
        clientOps += r.stats.clientOps;
      }
      t.true(clientOps > 0, 'clients were served');
    });
    for (let seed = lo; seed <= hi; seed++) if (knownFailures.has(seed)) registerKnownFailure(seed);
  }
  // Known failures beyond the range (seeds of the soak that show a defect no seed in the range does).
  if (part === 0)
    for (const seed of knownFailures.keys()) if (seed < firstSeed || seed > last) registerKnownFailure(seed);
  // Seeds beyond the range that found a defect since fixed: regressions must show.
  if (part === 1 % parts && fixedDefectSeeds.size > 0) {
    const seeds = [...fixedDefectSeeds.keys()].filter((s) => s < firstSeed || s > last);
    test.serial(
      `whole-node seeds ${seeds.join(', ')} (found fixed defects) keep every invariant`,
      async (t) => {
        for (const seed of seeds) {
          const r = await runWholeNodeSim({ seed, faultMs, profile });
          if (!r.ok) return t.fail(`defect ${fixedDefectSeeds.get(seed)} is back? ${explain(r)}`);
        }
        t.pass();
        return undefined;
      },
    );
  }
  if (part === 1 % parts && fixedDefectSoakSeeds.size > 0) {
    const soakMs = profileFaultMs.soak;
    test.serial(
      `whole-node soak seeds ${[...fixedDefectSoakSeeds.keys()].join(', ')} (found fixed defects) keep every invariant`,
      async (t) => {
        for (const [seed, defect] of fixedDefectSoakSeeds) {
          const r = await runWholeNodeSim({ seed, faultMs: soakMs, profile: 'soak' });
          if (!r.ok) {
            const how = `${r.violation}\nreplay: ${replayCommand(seed, soakMs, 'soak')}`;
            return t.fail(`defect ${defect} is back? ${how}`);
          }
        }
        t.pass();
        return undefined;
      },
    );
  }
}

function registerKnownFailure(seed: number): void {
  const known = knownFailures.get(seed)!;
  test.serial.failing(
    `whole-node seed ${seed}: known defect ${known.defect} (${knownDefects[known.defect]})`,
    async (t) => {
      const r = await runWholeNodeSim({ seed, faultMs, profile });
      // Fixed: passing makes ava report that this test no longer fails; remove the entry.
      if (r.ok) return t.pass();
      t.log(`${r.violation?.split('\n')[0]}\nreplay: ${replayCommand(seed, faultMs, profile)}`);
      // Failing otherwise than known is news: passing here makes ava report the test.
      if (!known.violation.test(r.violation ?? '')) {
        t.log('NOT the known violation: look at it');
        return t.pass();
      }
      t.fail(explain(r));
      return undefined;
    },
  );
}
