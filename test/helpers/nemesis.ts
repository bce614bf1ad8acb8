/**
 * The fault campaign's nemesis schedules (test/fault/campaign.test.ts, test/fault/campaign.ts): a
 * seed gives, deterministically, a list of fault steps (what kind, which role it hits, how long it
 * holds, which variant). The concrete node a step hits is resolved while it runs (who leads the
 * topic's active segment, who leads Raft), from the step's seeded `pick`; the run log names it.
 * Pure: no clock, no I/O, so a seed always replays the same schedule.
 */

/** Every kind of fault step, in the order seeds 1, 2, 3… start with them (so 1..n covers them all). */
export const nemesisKinds = [
  'kill-segment-leader',
  'kill-raft-leader',
  'kill-follower',
  'pause',
  'partition-minority',
  'partition-majority',
  'partition-one-way',
  'partition-segment-leader',
  'restart-all',
  'wipe',
  'disk-full',
] as const;

export type NemesisKind = (typeof nemesisKinds)[number];

/** Kinds that need real partitions (network namespaces + nftables: root, `ip`, `nft`). */
export const partitionKinds: ReadonlySet<NemesisKind> = new Set([
  'partition-minority',
  'partition-majority',
  'partition-one-way',
  'partition-segment-leader',
]);

/** Kinds that need root (a tmpfs mount). */
export const rootKinds: ReadonlySet<NemesisKind> = new Set(['disk-full']);

/** Which node a step hits, resolved at run time. */
export type Role = 'segment-leader' | 'raft-leader' | 'follower';

export interface NemesisStep {
  readonly kind: NemesisKind;
  /** How long the fault holds before it is healed (a pause: longer than the election timeout). */
  readonly holdMs: number;
  /** For kinds that hit one node of a chosen role (pause, wipe, one-way). */
  readonly role: Role;
  /** In [0, 1): picks among several candidates of the role (followers, peers) at run time. */
  readonly pick: number;
  /** A kind's variant: one-way ('deaf' | 'mute' | 'link'), segment-leader cut ('all' | 'one'), restart ('SIGKILL' | 'SIGTERM'). */
  readonly variant: string;
}

export interface Schedule {
  readonly seed: number;
  readonly kinds: readonly NemesisKind[];
  readonly steps: readonly NemesisStep[];
  /** The node index whose data directory is a small tmpfs (when disk-full is among the steps). */
  readonly diskNode: number | null;
}

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence on every machine. */
export function prng(seed: number): () => number {
  let a = (seed ^ 0x9e3779b9) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function int(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

function oneOf<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

const variants: Partial<Record<NemesisKind, readonly string[]>> = {
  'partition-one-way': ['deaf', 'mute', 'link'],
  'partition-segment-leader': ['all', 'one'],
  'restart-all': ['SIGKILL', 'SIGTERM'],
};

/**
 * The schedule of `seed` over the enabled kinds: `stepCount` steps; the first step's kind is
 * enabled[(seed - 1) mod n], so seeds 1..n start with every kind once; the rest are drawn.
 */
export function makeSchedule(
  seed: number,
  kinds: readonly NemesisKind[],
  stepCount: number,
  nodeCount = 3,
): Schedule {
  if (kinds.length === 0) throw new Error('no nemesis kind is enabled');
  const random = prng(seed);
  const steps: NemesisStep[] = [];
  for (let i = 0; i < stepCount; i++) {
    const kind =
      i === 0 ? kinds[(((seed - 1) % kinds.length) + kinds.length) % kinds.length]! : oneOf(random, kinds);
    // Drawn in the same order for every kind, so one step's kind never shifts the next step's draws.
    const holdMs = kind === 'pause' ? int(random, 1_500, 3_000) : int(random, 1_000, 3_000);
    const role = oneOf<Role>(random, ['segment-leader', 'raft-leader', 'follower']);
    const pick = random();
    const variant = oneOf(random, variants[kind] ?? ['']);
    steps.push({ kind, holdMs, role, pick, variant });
  }
  const diskNode = steps.some((s) => s.kind === 'disk-full') ? int(random, 0, nodeCount - 1) : null;
  return { seed, kinds, steps, diskNode };
}

/** One line per step, as the run log and failure messages print it. */
export function describeStep(step: NemesisStep): string {
  const who =
    step.kind === 'pause' || step.kind === 'wipe' || step.kind === 'partition-one-way' ? ` ${step.role}` : '';
  const variant = step.variant === '' ? '' : ` (${step.variant})`;
  return `${step.kind}${who}${variant} hold ${step.holdMs} ms`;
}

/**
 * The kinds a CAMPAIGN_KINDS value enables: unset or empty = all; `a,b` = only those; `-a,-b` =
 * all but those. Unknown names are an error (a typo must not silently run nothing).
 */
export function parseKinds(spec: string | undefined): NemesisKind[] {
  const words = (spec ?? '')
    .split(',')
    .map((w) => w.trim())
    .filter((w) => w.length > 0);
  if (words.length === 0) return [...nemesisKinds];
  const known = (w: string): NemesisKind => {
    if (!(nemesisKinds as readonly string[]).includes(w))
      throw new Error(`unknown nemesis kind '${w}' (known: ${nemesisKinds.join(', ')})`);
    return w as NemesisKind;
  };
  const excluded = words.filter((w) => w.startsWith('-')).map((w) => known(w.slice(1)));
  const included = words.filter((w) => !w.startsWith('-')).map(known);
  if (excluded.length > 0 && included.length > 0)
    throw new Error('CAMPAIGN_KINDS lists kinds either to keep or to leave out (-kind), not both');
  if (included.length > 0) return nemesisKinds.filter((k) => included.includes(k));
  return nemesisKinds.filter((k) => !excluded.includes(k));
}

/** What this machine can run: partitions need netns + nftables; a full disk needs root. */
export function runnableKinds(
  kinds: readonly NemesisKind[],
  can: { readonly partitions: boolean; readonly root: boolean },
): { kinds: NemesisKind[]; skipped: string[] } {
  const skipped: string[] = [];
  const out: NemesisKind[] = [];
  for (const k of kinds) {
    if (partitionKinds.has(k) && !can.partitions) skipped.push(`${k} (needs root, ip and nft: loopback run)`);
    else if (rootKinds.has(k) && !can.root) skipped.push(`${k} (needs root for a tmpfs mount)`);
    else out.push(k);
  }
  return { kinds: out, skipped };
}

/** Seeds from CAMPAIGN_SEEDS or --seeds: `7`, `1..20`, `3,9,12`, or a mix (`1..5,40`). */
export function parseSeeds(spec: string): number[] {
  const seeds: number[] = [];
  for (const part of spec.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const range = /^(\d+)\.\.(\d+)$/.exec(part);
    if (range !== null) {
      const [from, to] = [Number(range[1]), Number(range[2])];
      if (to < from) throw new Error(`empty seed range '${part}'`);
      for (let s = from; s <= to; s++) seeds.push(s);
    } else if (/^\d+$/.test(part)) {
      seeds.push(Number(part));
    } else {
      throw new Error(`bad seed list '${spec}' (e.g. 7, 1..20, 3,9,12)`);
    }
  }
  if (seeds.length === 0) throw new Error(`no seed in '${spec}'`);
  return seeds;
}
