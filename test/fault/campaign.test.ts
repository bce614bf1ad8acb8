/**
 * The fault campaign (test/helpers/campaign.ts): seeded nemesis schedules against a 3-node
 * cluster of real processes (kill -9 of the active segment's leader, of the Raft leader, of a
 * follower; SIGSTOP past the election timeout; partitions: minority, majority, one-way, the segment
 * leader cut from its peers; restart of all nodes; a wiped data directory brought back as
 * docs/cluster.md prescribes; a full disk), with binary and HTTP writers and a consumer running,
 * then the history checked against the topic read back through every node. Each schedule must
 * show no violation.
 *
 * CAMPAIGN_SEEDS (default 1..20) picks the schedules, CAMPAIGN_KINDS the nemesis kinds (default
 * all; `-wipe,-disk-full` leaves those out), CAMPAIGN_STEPS the steps per schedule (default 3).
 * Partition kinds need root, `ip` and `nft` (otherwise the run is on loopback without them, and
 * says so); a full disk needs root (a tmpfs).
 */
import test from 'ava';
import { failureReport, runSchedule, summaryLine } from '../helpers/campaign.js';
import { describeStep, makeSchedule, nemesisKinds, parseKinds, parseSeeds } from '../helpers/nemesis.js';

const seeds = parseSeeds(process.env['CAMPAIGN_SEEDS'] ?? '1..20');
const kinds = parseKinds(process.env['CAMPAIGN_KINDS']);
const stepCount = Number(process.env['CAMPAIGN_STEPS'] ?? 3);

test('a seed always gives the same schedule, and seeds 1..n start with every kind', (t) => {
  t.deepEqual(makeSchedule(42, nemesisKinds, 5), makeSchedule(42, nemesisKinds, 5));
  t.notDeepEqual(makeSchedule(42, nemesisKinds, 5).steps, makeSchedule(43, nemesisKinds, 5).steps);
  const firsts = new Set(nemesisKinds.map((_, i) => makeSchedule(i + 1, nemesisKinds, 3).steps[0]!.kind));
  t.is(firsts.size, nemesisKinds.length);
  t.log(makeSchedule(1, nemesisKinds, 3).steps.map(describeStep).join(' | '));
});

for (const seed of seeds) {
  test.serial(`schedule seed ${seed}: no violation`, async (t) => {
    t.timeout(280_000);
    const lines: string[] = [];
    const result = await runSchedule({ seed, kinds, stepCount, log: (line) => lines.push(line) });
    t.log(summaryLine(result));
    for (const s of result.steps) t.log(`  ${s}`);
    if (result.skippedKinds.length > 0) t.log(`not run on this machine: ${result.skippedKinds.join('; ')}`);
    if (result.violations.length === 0) {
      t.pass();
      return;
    }
    t.log(lines.join('\n').slice(-6000));
    t.fail(failureReport(result));
  });
}
