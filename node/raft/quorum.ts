/**
 * Majority-quorum arithmetic, kept apart so it can be property-tested against a naive version.
 */

/** Votes or acks needed among n voters. */
export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The highest index that at least a quorum of `matches` (one per voter) have reached; 0 if none. */
export function committedIndex(matches: readonly number[]): number {
  if (matches.length === 0) return 0;
  const sorted = matches.slice().sort((a, b) => b - a);
  return sorted[quorumSize(sorted.length) - 1]!;
}
