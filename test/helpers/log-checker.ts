/**
 * A Jepsen-style check of one topic's history: what the writers were told (an offset for each
 * acknowledged append, an error for each whose outcome is unknown) against what a reader finds
 * afterwards. Acknowledged records must be there exactly once at their offsets; nothing may appear
 * that nobody wrote; offsets have no holes.
 */

export interface Attempt {
  readonly value: string;
  /** Set when the append was acknowledged. */
  readonly offset?: number;
  readonly error?: string;
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
  for (const a of attempts) {
    const at = foundAt.get(a.value);
    if (a.offset !== undefined) {
      acknowledged += 1;
      if (at === undefined) lost.push(a.value);
      else if (!at.includes(a.offset)) misplaced.push(`${a.value}@${a.offset} found at ${at.join(',')}`);
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
  return { acknowledged, unknown, unknownPresent, lost, misplaced, duplicated, unexpected, holes };
}
