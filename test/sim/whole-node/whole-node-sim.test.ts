/**
 * The whole-node simulation as part of `npm test`: WHOLE_SEEDS seeds (default 200) of the `quick`
 * profile (5 simulated s of dense faults each, SIM_MS to change), every invariant checked as the
 * run goes (Raft, replication S1-S9, the clients' history), then liveness and the settled checks.
 * `SEED=n` replays one run (as does `SEED=n SIM_MS=5000 SIM_PROFILE=quick npm run sim:whole`);
 * every failure prints its seed, replay command and the seed-derived options.
 *
 * The seeds are split over two files (this one and whole-node-sim-b.test.ts) so that both of ava's
 * workers run them. Seeds listed in known-failures.ts (defects of node/ code) run as known failures.
 */
import { registerWholeNodeSeeds } from './whole-node-seeds.js';

registerWholeNodeSeeds(0, 2);
