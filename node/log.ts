/**
 * The one logger of nodes and gateway, and its one line shape (docs/operator-tools.md, "Logs"): every
 * event is one JSON line
 *
 *   {"level":"info","time":"2026-01-01T00:00:00.000Z","component":"node","nodeId":1,"msg":"Client listener bound",…}
 *
 * `level` is a label (debug, info, warn, error), `time` ISO 8601 UTC, `component` the process kind
 * (`node`, `gateway`), `nodeId` on a node's lines, `msg` a stable message; the rest are the event's
 * own fields (one about another node names it `subjectNodeId`). The seed's operator lines ("Node 1 booting", "Client listener bound", "Monitor loop
 * started") are the `msg` of their events, so `grep "Monitor loop started"` works as with Walrus.
 *
 * Modules take the `Logger` interface by injection and never create one; only entry points call
 * `createLogger`, so tests can pass `silentLogger` or capture what is logged. `LogThrottle` keeps
 * an event that repeats (a down peer's reconnect attempts) to one line per interval.
 */
import { pino } from 'pino';

export interface Logger {
  debug?(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };

/** The process kinds that log (the `component` field). */
export type LogComponent = 'node' | 'gateway';

/** The levels `--log-level` / WALRUS_LOG_LEVEL accept (plus pino's trace, fatal and silent). */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export interface LoggerOptions {
  /** Process kind; default `node` when `nodeId` is given, else `gateway`. */
  readonly component?: LogComponent;
  /** Node id: a node's lines carry `nodeId`. */
  readonly nodeId?: number;
  /** One of logLevels. */
  readonly level: string;
  /** Append to this file instead of stdout. */
  readonly file?: string | null;
}

/** The production logger: pino, JSON lines, ISO time, level as a label, the base fields above. */
export function createLogger(options: LoggerOptions): Logger & { level: string } {
  const destination = pino.destination({ dest: options.file ?? 1, sync: true, mkdir: true });
  const component = options.component ?? (options.nodeId === undefined ? 'gateway' : 'node');
  return pino(
    {
      level: options.level,
      base: options.nodeId === undefined ? { component } : { component, nodeId: options.nodeId },
      formatters: {
        level: (label) => ({ level: label }),
        ...(options.nodeId === undefined ? {} : { log: renameSubjectNodeId }),
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/**
 * On a node, `nodeId` names the node that writes the line; an event about another node (a peer
 * that authenticated, a member removed) that calls it `nodeId` too has it renamed `subjectNodeId`,
 * so that no line carries the key twice.
 */
function renameSubjectNodeId(fields: Record<string, unknown>): Record<string, unknown> {
  if (!('nodeId' in fields)) return fields;
  const { nodeId, ...rest } = fields;
  return { ...rest, subjectNodeId: nodeId };
}

/**
 * At most one line per `intervalMs` for an event that repeats: `take()` answers the number of
 * occurrences suppressed since the last line when one may be written now, else null (and counts
 * this one). The clock is injected so that tests need not wait.
 */
export class LogThrottle {
  private lastMs = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {}

  take(): number | null {
    const now = this.nowMs();
    if (now - this.lastMs < this.intervalMs) {
      this.suppressed += 1;
      return null;
    }
    const suppressed = this.suppressed;
    this.lastMs = now;
    this.suppressed = 0;
    return suppressed;
  }

  /** Occurrences not logged since the last line. */
  get suppressedCount(): number {
    return this.suppressed;
  }
}
