/**
 * The one logger of nodes and gateway: `logger.info({ ...fields }, 'Message')`, one JSON line per
 * event with `level`, `time`, the component's identity (`node_id` on a node, `name` on the gateway)
 * and `msg`; the fields are the event's own (docs/architecture.md, "Logs", shows the line shape). The seed's
 * operator lines ("Node 1 booting", "Client listener bound", "Monitor loop started") are the `msg`
 * of their events, so `grep "Monitor loop started"` works as with Walrus.
 *
 * Modules take the `Logger` interface by injection and never create one; only entry points call
 * `createLogger`, so tests can pass `silentLogger` or capture what is logged.
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

export interface LoggerOptions {
  /** Node id: lines carry `node_id`. */
  readonly nodeId?: number;
  /** Component name when there is no node id (e.g. `gateway`): lines carry `name`. */
  readonly name?: string;
  /** pino level: trace, debug, info, warn, error, fatal, silent. */
  readonly level: string;
  /** Append to this file instead of stdout. */
  readonly file?: string | null;
}

/** The production logger: pino, JSON lines, ISO time, level as a label. */
export function createLogger(options: LoggerOptions): Logger & { level: string } {
  const destination = pino.destination({ dest: options.file ?? 1, sync: true, mkdir: true });
  return pino(
    {
      level: options.level,
      base: options.nodeId === undefined ? { name: options.name } : { node_id: options.nodeId },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
