/**
 * Scripted simulator scenarios (scenarios.ts) over many seeds: the same fault, different timings
 * and Raft options; every invariant checked after every event, then liveness.
 */
import test from 'ava';
import { scenarioOverrides, uncommittedPromoteScenario } from './scenarios.js';
import { runSimulation } from './simulation.js';

const scenarioSeedCount = 40;

test(`defect 6: an uncommitted promote on a cut-off leader, another voter dead: a leader is elected (${scenarioSeedCount} seeds)`, (t) => {
  for (let seed = 1; seed <= scenarioSeedCount; seed++) {
    const r = runSimulation({
      seed,
      events: 0,
      script: uncommittedPromoteScenario,
      derivedOverrides: scenarioOverrides,
    });
    if (!r.ok) return t.fail(`seed ${seed}: ${r.violation}\nderived options: ${JSON.stringify(r.derived)}`);
  }
  t.pass();
});
