/**
 * A Jepsen-style check of one topic's history: what the writers were told (an offset for each
 * acknowledged append, an error for each whose outcome is unknown) against what a reader finds
 * afterwards. Acknowledged records must be there exactly once at their offsets; nothing may appear
 * that nobody wrote; offsets have no holes.
 *
 * For the fault campaign (test/fault/campaign.test.ts) also: attempts whose error guarantees no
 * write (`definite`) must not be there; a read must cover the topic's whole range; every node must
 * serve the same sequence; a consumer's committed cursor never moves backwards nor past the end,
 * and what it was delivered is what the log holds at those offsets.
 */

export interface Attempt {
  readonly value: string;
  /** Set when the append was acknowledged. */
  readonly offset?: number;
  readonly error?: string;
  /** Set when the error guarantees that nothing was written (it must then not be found). */
  readonly definite?: boolean;
}

export interface LogCheck {
  readonly acknowledged: number;
  readonly unknown: number;
  /** Unknown outcomes that did land (allowed). */
  readonly unknownPresent: number;
  /** Acknowledged but not found. */
  readonly lost: string[];
  /** Acknowledged at one offset, found at another. */
  readonly misplaced: string[];
  /** Found more than once. */
  readonly duplicated: string[];
  /** Found but never written. */
  readonly unexpected: string[];
  /** Offsets between the first and the last record that hold nothing. */
  readonly holes: number[];
  /** Attempts that failed definitely (`definite`). */
  readonly failed: number;
  /** Failed definitely, found all the same. */
  readonly failedPresent: string[];
}

export function checkLog(
  attempts: readonly Attempt[],
  records: readonly { offset: number; value: string }[],
): LogCheck {
  const written = new Map(attempts.map((a) => [a.value, a]));
  const foundAt = new Map<string, number[]>();
  for (const r of records) foundAt.set(r.value, [...(foundAt.get(r.value) ?? []), r.offset]);
  const lost: string[] = [];
  const misplaced: string[] = [];
  let acknowledged = 0;
  let unknown = 0;
  let unknownPresent = 0;
  let failed = 0;
  const failedPresent: string[] = [];
  for (const a of attempts) {
    const at = foundAt.get(a.value);
    if (a.offset !== undefined) {
      acknowledged += 1;
      if (at === undefined) lost.push(a.value);
      else if (!at.includes(a.offset)) misplaced.push(`${a.value}@${a.offset} found at ${at.join(',')}`);
    } else if (a.definite === true) {
      failed += 1;
      if (at !== undefined)
        failedPresent.push(`${a.value} (${a.error ?? 'failed'}) found at ${at.join(',')}`);
    } else {
      unknown += 1;
      if (at !== undefined) unknownPresent += 1;
    }
  }
  const duplicated = [...foundAt]
    .filter(([, at]) => at.length > 1)
    .map(([v, at]) => `${v} at ${at.join(',')}`);
  const unexpected = [...foundAt.keys()].filter((v) => !written.has(v));
  const holes: number[] = [];
  const offsets = records.map((r) => r.offset).sort((x, y) => x - y);
  for (let i = 1; i < offsets.length && holes.length < 100; i++) {
    for (let o = offsets[i - 1]! + 1; o < offsets[i]! && holes.length < 100; o++) holes.push(o);
  }
  return {
    acknowledged,
    unknown,
    unknownPresent,
    lost,
    misplaced,
    duplicated,
    unexpected,
    holes,
    failed,
    failedPresent,
  };
}

export interface RangeCheck {
  /** Offsets in [startOffset, endOffset) that no record holds (at most 100). */
  readonly missing: number[];
  /** Records outside [startOffset, endOffset), or not in increasing offset order. */
  readonly stray: string[];
}

/**
 * A whole-topic read: one record at every offset from `startOffset` (0 for a topic without
 * retention) up to its end, in order, and nothing else (checkLog's holes only look between the
 * first and the last record read).
 */
export function checkRange(
  records: readonly { offset: number; value: string }[],
  endOffset: number,
  startOffset = 0,
): RangeCheck {
  const missing: number[] = [];
  const stray: string[] = [];
  const have = new Set<number>();
  let previous = -1;
  for (const r of records) {
    if (r.offset < startOffset || r.offset >= endOffset)
      stray.push(`${r.value}@${r.offset} outside [${startOffset}, ${endOffset})`);
    else if (r.offset <= previous) stray.push(`${r.value}@${r.offset} after offset ${previous}`);
    previous = Math.max(previous, r.offset);
    have.add(r.offset);
  }
  for (let o = startOffset; o < endOffset && missing.length < 100; o++) if (!have.has(o)) missing.push(o);
  return { missing, stray };
}

/**
 * Reads of one topic through several nodes must be the same sequence: for each read after the
 * first, where it first differs from the first one (or nothing).
 */
export function compareReads(
  reads: readonly {
    readonly label: string;
    readonly records: readonly { offset: number; value: string }[];
  }[],
): string[] {
  const out: string[] = [];
  const first = reads[0];
  if (first === undefined) return out;
  const show = (r: { offset: number; value: string } | undefined): string =>
    r === undefined ? 'nothing' : `${JSON.stringify(r.value)}@${r.offset}`;
  for (const read of reads.slice(1)) {
    const n = Math.max(read.records.length, first.records.length);
    for (let i = 0; i < n; i++) {
      const a = first.records[i];
      const b = read.records[i];
      if (a?.offset === b?.offset && a?.value === b?.value) continue;
      out.push(
        `${read.label} differs from ${first.label} at record ${i}: ${show(b)} vs ${show(a)} ` +
          `(${read.records.length} vs ${first.records.length} records)`,
      );
      break;
    }
  }
  return out;
}

/** What a consumer saw, in order (test/helpers/history.ts ConsumerEvent has this shape). */
export type ConsumerObservation =
  | {
      readonly kind: 'deliver';
      readonly records: readonly { readonly offset: number; readonly value: string }[];
      readonly nextOffset: number;
    }
  | { readonly kind: 'cursor'; readonly offset: number; readonly how: string }
  | { readonly kind: 'error' };

export interface ConsumerCheck {
  /** A committed cursor lower than one seen before it, or records delivered from below it (`#event index …`). */
  readonly backwards: string[];
  /** A committed cursor past the topic's end. */
  readonly beyondEnd: string[];
  /** A delivered record the log does not hold at that offset (lost since, or never there). */
  readonly mismatched: string[];
  /** One delivery whose offsets are not consecutive, or whose nextOffset does not follow them. */
  readonly gaps: string[];
}

/**
 * A consumer's history against the final log: cursors never move backwards and never pass
 * `endOffset`; each delivery is consecutive offsets starting at or after the highest committed
 * cursor seen before it, and each delivered record is the one the log holds at that offset (so
 * what consumers see is a prefix-consistent subsequence of the log). Offsets a read could not
 * get are left out with `known`.
 */
export function checkConsumer(
  events: readonly ConsumerObservation[],
  records: readonly { offset: number; value: string }[],
  /** null when the topic's end is not known (then no cursor is judged against it). */
  endOffset: number | null,
  /** Offsets whose record is known (default: all); deliveries elsewhere are not compared. */
  known: (offset: number) => boolean = () => true,
): ConsumerCheck {
  const log = new Map(records.map((r) => [r.offset, r.value]));
  const backwards: string[] = [];
  const beyondEnd: string[] = [];
  const mismatched: string[] = [];
  const gaps: string[] = [];
  let committed = -1;
  let committedHow = '';
  for (const [i, e] of events.entries()) {
    if (e.kind === 'cursor') {
      if (e.offset < committed)
        backwards.push(`#${i} cursor ${e.offset} (${e.how}) after ${committed} (${committedHow})`);
      if (endOffset !== null && e.offset > endOffset)
        beyondEnd.push(`cursor ${e.offset} (${e.how}) past the end ${endOffset}`);
      if (e.offset >= committed) {
        committed = e.offset;
        committedHow = e.how;
      }
      continue;
    }
    if (e.kind !== 'deliver') continue;
    const first = e.records[0];
    if (first === undefined) continue;
    if (first.offset < committed)
      backwards.push(
        `#${i} delivered from ${first.offset}, below the committed cursor ${committed} (${committedHow})`,
      );
    for (let i = 0; i < e.records.length; i++) {
      const r = e.records[i]!;
      if (i > 0 && r.offset !== e.records[i - 1]!.offset + 1)
        gaps.push(`delivered ${e.records[i - 1]!.offset} then ${r.offset}`);
      const held = log.get(r.offset);
      if (held !== r.value && known(r.offset))
        mismatched.push(
          `delivered ${JSON.stringify(r.value)}@${r.offset}, the log holds ${held === undefined ? 'nothing' : JSON.stringify(held)}`,
        );
    }
    const last = e.records[e.records.length - 1]!;
    if (e.nextOffset !== last.offset + 1)
      gaps.push(`delivered up to ${last.offset}, nextOffset ${e.nextOffset}`);
  }
  return { backwards, beyondEnd, mismatched, gaps };
}
