#!/usr/bin/env node
/**
 * The fault campaign on demand: many seeded schedules (test/helpers/campaign.ts), one line each,
 * then a summary; exits 1 on any violation (each printed with its seed, its nemesis steps and the
 * command that replays it).
 *
 *   node dist/test/fault/campaign.js --schedules 500 [--first-seed 1] [--time-budget-s 3600]
 *   node dist/test/fault/campaign.js --seed 17          # replays exactly one schedule, verbosely
 *
 * Options: --steps N (default 3, or CAMPAIGN_STEPS), --kinds a,b | -a,-b (or CAMPAIGN_KINDS),
 * --seeds 1..20,40 (or CAMPAIGN_SEEDS), --mode auto|netns|loopback (or CAMPAIGN_MODE), --verbose.
 * No new schedule starts once the time budget (default 600 s) is spent.
 */
import { parseArgs } from 'node:util';
import {
  failureReport,
  planSchedule,
  runSchedule,
  summaryLine,
  type ScheduleResult,
} from '../helpers/campaign.js';
import { describeStep, parseKinds, parseSeeds } from '../helpers/nemesis.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      schedules: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      'first-seed': { type: 'string' },
      'time-budget-s': { type: 'string' },
      steps: { type: 'string' },
      kinds: { type: 'string' },
      mode: { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: campaign.js [--schedules N] [--first-seed N] [--seed N] [--seeds 1..20] [--time-budget-s S] [--steps N] [--kinds k,…] [--mode auto|netns|loopback] [--verbose]\n',
    );
    return 0;
  }
  const kinds = parseKinds(values.kinds ?? process.env['CAMPAIGN_KINDS']);
  const stepCount = Number(values.steps ?? process.env['CAMPAIGN_STEPS'] ?? 3);
  const budgetMs = Number(values['time-budget-s'] ?? 600) * 1000;
  const mode = (values.mode ?? process.env['CAMPAIGN_MODE'] ?? 'auto') as 'auto' | 'netns' | 'loopback';
  if (!['auto', 'netns', 'loopback'].includes(mode))
    throw new Error(`--mode is auto, netns or loopback, not ${mode}`);
  // Ctrl-C: the schedule under way is wound up (its processes, namespaces and mounts removed) and
  // no other starts; a second Ctrl-C leaves at once (the next run removes what is left).
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stdout.write('\ninterrupted: cleaning up after this schedule (Ctrl-C again to leave now)\n');
  });
  let seeds: number[];
  if (values.seed !== undefined) seeds = [Number(values.seed)];
  else if (values.seeds !== undefined || process.env['CAMPAIGN_SEEDS'] !== undefined)
    seeds = parseSeeds(values.seeds ?? process.env['CAMPAIGN_SEEDS']!);
  else {
    const first = Number(values['first-seed'] ?? 1);
    seeds = Array.from({ length: Number(values.schedules ?? 20) }, (_, i) => first + i);
  }
  const verbose = values.verbose === true || values.seed !== undefined;
  const started = Date.now();
  const results: ScheduleResult[] = [];
  let skippedNote = false;
  for (const seed of seeds) {
    if (interrupted) break;
    if (Date.now() - started > budgetMs) {
      process.stdout.write(
        `time budget of ${budgetMs / 1000} s spent: ${results.length} of ${seeds.length} schedules run\n`,
      );
      break;
    }
    if (verbose) {
      const planned = planSchedule({ seed, kinds, stepCount, mode }).schedule;
      process.stdout.write(`seed ${seed}: ${planned.steps.map(describeStep).join(' | ')}\n`);
    }
    const r = await runSchedule({
      seed,
      kinds,
      stepCount,
      mode,
      ...(verbose ? { log: (line: string) => process.stdout.write(`${line}\n`) } : {}),
    });
    results.push(r);
    if (!skippedNote && r.skippedKinds.length > 0) {
      process.stdout.write(`not run on this machine: ${r.skippedKinds.join('; ')}\n`);
      skippedNote = true;
    }
    process.stdout.write(`${summaryLine(r)}\n`);
    if (r.violations.length > 0) process.stdout.write(`${failureReport(r)}\n`);
  }
  const failed = results.filter((r) => r.violations.length > 0);
  const seconds = (Date.now() - started) / 1000;
  const byKind = new Map<string, number[]>();
  for (const r of failed)
    for (const k of new Set(r.violations.map((v) => v.kind)))
      byKind.set(k, [...(byKind.get(k) ?? []), r.seed]);
  process.stdout.write(
    `\n${results.length} schedules in ${seconds.toFixed(0)} s (${(seconds / Math.max(1, results.length)).toFixed(1)} s each): ` +
      `${results.length - failed.length} passed, ${failed.length} failed\n`,
  );
  for (const [k, s] of byKind) process.stdout.write(`  ${k}: seeds ${s.join(', ')}\n`);
  return failed.length === 0 && !interrupted ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`campaign: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(2);
  },
);
