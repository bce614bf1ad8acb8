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
 * all; `-wipe,-disk-full` leaves those out), CAMPAIGN_STEPS the steps per schedule (default 3),
 * CAMPAIGN_MODE=loopback forces the loopback cluster (no partitions).
 * Partition kinds need root, `ip` and `nft` (otherwise the run is on loopback without them, and
 * says so); a full disk needs root (a tmpfs).
 */
import test from 'ava';
import { failureReport, runSchedule, summaryLine } from '../helpers/campaign.js';
import { classifyClientError, classifyHttpError } from '../helpers/history.js';
import {
  describeStep,
  makeSchedule,
  nemesisKinds,
  parseKinds,
  parseSeeds,
  runnableKinds,
} from '../helpers/nemesis.js';

const seeds = parseSeeds(process.env['CAMPAIGN_SEEDS'] ?? '1..20');
const kinds = parseKinds(process.env['CAMPAIGN_KINDS']);
const stepCount = Number(process.env['CAMPAIGN_STEPS'] ?? 3);
const mode = (process.env['CAMPAIGN_MODE'] ?? 'auto') as 'auto' | 'netns' | 'loopback';

test('a seed always gives the same schedule, and seeds 1..n start with every kind', (t) => {
  t.deepEqual(makeSchedule(42, nemesisKinds, 5), makeSchedule(42, nemesisKinds, 5));
  t.notDeepEqual(makeSchedule(42, nemesisKinds, 5).steps, makeSchedule(43, nemesisKinds, 5).steps);
  const firsts = new Set(nemesisKinds.map((_, i) => makeSchedule(i + 1, nemesisKinds, 3).steps[0]!.kind));
  t.is(firsts.size, nemesisKinds.length);
  t.log(makeSchedule(1, nemesisKinds, 3).steps.map(describeStep).join(' | '));
});

test('CAMPAIGN_KINDS and CAMPAIGN_SEEDS parse; kinds a machine cannot run are named', (t) => {
  t.deepEqual(parseKinds(undefined), [...nemesisKinds]);
  t.deepEqual(parseKinds('restart-all, pause'), ['pause', 'restart-all']);
  t.false(parseKinds('-wipe,-disk-full').includes('wipe'));
  t.is(parseKinds('-wipe,-disk-full').length, nemesisKinds.length - 2);
  t.throws(() => parseKinds('wipe,-pause'));
  t.throws(() => parseKinds('wiped'), { message: /unknown nemesis kind 'wiped'/ });
  t.deepEqual(parseSeeds('1..3,7'), [1, 2, 3, 7]);
  t.throws(() => parseSeeds('3..1'));
  const loopback = runnableKinds(nemesisKinds, { partitions: false, root: false });
  t.false(loopback.kinds.some((k) => k.startsWith('partition-') || k === 'disk-full'));
  t.is(loopback.skipped.length, 5);
});

test('an error is a certain failure only when it guarantees nothing was written', (t) => {
  t.is(classifyClientError({ code: 'NOT_LEADER', message: 'x' }).outcome, 'fail');
  t.is(classifyClientError({ code: 'TIMEOUT', message: 'x' }).outcome, 'unknown');
  t.is(classifyClientError({ code: 'UNAVAILABLE', name: 'TransportError', sent: false }).outcome, 'fail');
  t.is(classifyClientError({ code: 'UNAVAILABLE', name: 'TransportError', sent: true }).outcome, 'unknown');
  t.is(classifyClientError({ code: 'DISK_FULL' }).outcome, 'unknown');
  t.is(classifyHttpError(429, '{"code":"BUSY"}').outcome, 'fail');
  t.is(classifyHttpError(503, '{"code":"UNAVAILABLE"}').outcome, 'unknown');
  t.is(classifyHttpError(502, '<html>').outcome, 'unknown');
});

for (const seed of seeds) {
  test.serial(`schedule seed ${seed}: no violation`, async (t) => {
    t.timeout(280_000);
    const lines: string[] = [];
    const result = await runSchedule({ seed, kinds, stepCount, mode, log: (line) => lines.push(line) });
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
