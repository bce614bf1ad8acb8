/**
 * Counts the node's log lines by level (seed 002's "Log errors: count of ERROR log lines per
 * minute") by wrapping the one Logger the entry point creates: every module logs through it, so
 * nothing else changes. Counting is an array increment; the line is written as before.
 */
import type { Logger } from '../log.js';

export const logLevels = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof logLevels)[number];

/** Lines logged so far, by level (index of `logLevels`). */
export class LogLineCounts {
  readonly counts = new Float64Array(logLevels.length);

  /** A logger that writes through `inner` and counts each line at its level. */
  wrap<L extends Logger>(inner: L): L {
    const counts = this.counts;
    const wrapped: Logger = {
      info: (obj, msg) => {
        counts[1]! += 1;
        inner.info(obj, msg);
      },
      warn: (obj, msg) => {
        counts[2]! += 1;
        inner.warn(obj, msg);
      },
      error: (obj, msg) => {
        counts[3]! += 1;
        inner.error(obj, msg);
      },
      debug: (obj, msg) => {
        counts[0]! += 1;
        inner.debug?.(obj, msg);
      },
    };
    // The rest of the inner logger (pino's `level`, say) stays reachable.
    return Object.setPrototypeOf(wrapped, inner) as L;
  }
}
