/**
 * When appended bytes reach the disk. `always`: an append resolves only after fdatasync of every
 * file its batch touched. `interval:<ms>`: it resolves after the write; a timer fdatasyncs dirty
 * files every `intervalMs`. `never`: the OS decides (seal and close still fdatasync).
 */
import { WalError, WalErrorCode } from './wal-error.js';

export type FsyncPolicy = { kind: 'always' } | { kind: 'interval'; intervalMs: number } | { kind: 'never' };

/** Bounds of `interval:<ms>`: below 1 ms is a busy loop, above an hour is `never` in disguise. */
export const fsyncIntervalMsMin = 1;
export const fsyncIntervalMsMax = 3_600_000;

/** Parses `always` | `never` | `interval:<ms>` (also `<ms>ms`); throws WalError BAD_REQUEST on anything else. */
export function parseFsyncPolicy(text: string): FsyncPolicy {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'always') return { kind: 'always' };
  if (trimmed === 'never') return { kind: 'never' };
  const match = /^(?:interval:(\d{1,7})|(\d{1,7})ms)$/.exec(trimmed);
  const digits = match?.[1] ?? match?.[2];
  if (digits !== undefined) {
    const intervalMs = Number(digits);
    if (intervalMs >= fsyncIntervalMsMin && intervalMs <= fsyncIntervalMsMax) {
      return { kind: 'interval', intervalMs };
    }
  }
  throw new WalError(
    WalErrorCode.BAD_REQUEST,
    `fsync policy '${text.slice(0, 64)}' is not one of always, never, interval:<ms> ` +
      `(${fsyncIntervalMsMin}..${fsyncIntervalMsMax})`,
  );
}

export function formatFsyncPolicy(policy: FsyncPolicy): string {
  return policy.kind === 'interval' ? `interval:${policy.intervalMs}` : policy.kind;
}
