/**
 * The deterministic Raft simulation as part of `npm test`: SIM_SEEDS seeds (default 500) of
 * SIM_EVENTS events (default 5000) each, every invariant checked after every event, then liveness.
 * `SEED=n npm run test:sim` replays exactly one run; every failure prints that command.
 */
import test from 'ava';
import { replayCommand, runSimulation, type SimResult } from './simulation.js';

const seedsDefault = 500;
const eventsDefault = 5000;
const chunkSeedCount = 50;

const events = Number(process.env['SIM_EVENTS'] ?? eventsDefault);
const onlySeed = process.env['SEED'];

function explain(r: SimResult): string {
  return [
    `Raft simulation failed for seed ${r.seed}: ${r.violation}`,
    `derived options: ${JSON.stringify(r.derived)}`,
    `replay: ${replayCommand(r.seed, events)}`,
  ].join('\n');
}

if (onlySeed !== undefined) {
  const seed = Number(onlySeed);
  test(`replays seed ${seed} (${events} events)`, (t) => {
    const r = runSimulation({ seed, events });
    t.log(JSON.stringify(r.stats));
    t.true(r.ok, r.ok ? '' : explain(r));
  });
} else {
  // Issue 8, defect 10: these seeds outlasted the old fixed bound (60 election timeouts after
  // healing) at 50,000 events: a leader cut off from its quorum had kept accepting thousands of
  // proposals, and replicating them after the heal took longer than any election. The bound now
  // counts that catch-up.
  const longBacklogSeeds = [900215, 900912, 901224, 902044, 902955, 903440, 903951];
  const longEvents = 50_000;
  test(`seeds with a long backlog after healing stay live (${longBacklogSeeds.length} seeds × ${longEvents} events)`, (t) => {
    for (const seed of longBacklogSeeds) {
      const r = runSimulation({ seed, events: longEvents });
      if (!r.ok) return t.fail(`${explain(r)} (SIM_EVENTS=${longEvents})`);
    }
    t.pass();
  });
  const seedCount = Number(process.env['SIM_SEEDS'] ?? seedsDefault);
  for (let lo = 1; lo <= seedCount; lo += chunkSeedCount) {
    const hi = Math.min(seedCount, lo + chunkSeedCount - 1);
    test(`seeds ${lo}..${hi} × ${events} events keep every invariant and stay live`, (t) => {
      let eventTotal = 0;
      for (let seed = lo; seed <= hi; seed++) {
        const r = runSimulation({ seed, events });
        if (!r.ok) return t.fail(explain(r));
        eventTotal += r.stats.events;
      }
      t.true(eventTotal >= (hi - lo + 1) * events, 'every seed ran its events');
    });
  }
}
