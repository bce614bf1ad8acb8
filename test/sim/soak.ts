/**
 * Soak runner for the Raft simulator: many more seeds than `npm test`, on demand.
 *   node dist/test/sim/soak.js --seeds 100000 [--from 1] [--events 5000] [--bug vote|old-term|send|read]
 *   node dist/test/sim/soak.js --seed 123 [--trace]      (one run; --trace prints every message)
 * Env fallbacks: SOAK_SEEDS, SOAK_FROM, SIM_EVENTS. Prints each failing seed with its replay
 * command; exits 1 if any seed failed.
 */
import { parseArgs } from 'node:util';
import { replayCommand, runSimulation, type SimOptions } from './simulation.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    from: { type: 'string' },
    events: { type: 'string' },
    seed: { type: 'string' },
    bug: { type: 'string' },
    trace: { type: 'boolean', default: false },
  },
});

const events = Number(values.events ?? process.env['SIM_EVENTS'] ?? 5000);
const bugOptions: Record<string, Partial<SimOptions>> = {
  vote: { bugs: { grantVoteIgnoringLog: true } },
  'old-term': { bugs: { commitOldTermByCounting: true } },
  send: { unsafeSendBeforePersist: true },
  read: { bugs: { readIndexWithoutQuorum: true } },
};
const extra = values.bug === undefined ? {} : bugOptions[values.bug];
if (extra === undefined) {
  console.error(`unknown --bug ${values.bug}; one of ${Object.keys(bugOptions).join(', ')}`);
  process.exit(2);
}

if (values.seed !== undefined) {
  const seed = Number(values.seed);
  const r = runSimulation({
    seed,
    events,
    ...extra,
    ...(values.trace ? { trace: (line: string) => console.log(line) } : {}),
  });
  console.log(
    JSON.stringify({ seed, ok: r.ok, violation: r.violation, derived: r.derived, stats: r.stats }, null, 2),
  );
  process.exit(r.ok ? 0 : 1);
}

const from = Number(values.from ?? process.env['SOAK_FROM'] ?? 1);
const count = Number(values.seeds ?? process.env['SOAK_SEEDS'] ?? 10_000);
const started = performance.now();
let failed = 0;
let eventTotal = 0;
for (let seed = from; seed < from + count; seed++) {
  const r = runSimulation({ seed, events, ...extra });
  eventTotal += r.stats.events;
  if (!r.ok) {
    failed++;
    const replay =
      values.bug === undefined
        ? replayCommand(seed, events)
        : `node dist/test/sim/soak.js --seed ${seed} --events ${events} --bug ${values.bug}`;
    console.log(`FAIL seed ${seed}: ${r.violation?.split('\n')[0]}\n  replay: ${replay}`);
  }
  if ((seed - from + 1) % 1000 === 0) {
    const s = (performance.now() - started) / 1000;
    console.log(
      `… ${seed - from + 1}/${count} seeds, ${failed} failed, ${Math.round(eventTotal / s)} events/s`,
    );
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `soak: ${count} seeds × ${events} events from seed ${from}: ${failed} failed, ${eventTotal} events in ${seconds.toFixed(1)} s (${Math.round(eventTotal / seconds)} events/s)`,
);
process.exit(failed > 0 ? 1 : 0);
