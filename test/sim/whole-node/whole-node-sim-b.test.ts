/** The second half of npm test's whole-node seeds (see whole-node-sim.test.ts). */
import { registerWholeNodeSeeds } from './whole-node-seeds.js';

registerWholeNodeSeeds(1, 2);
