/**
 * Structured JSON logs (pino): one line per event with `level`, `time`, `node_id` and `msg`.
 * The seed's operator lines ("Node 1 booting", "Client listener bound", "Monitor loop started")
 * are the `msg` of their events, so `grep "Monitor loop started"` works as with Walrus.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: {
  nodeId?: number;
  level: string;
  file: string | null;
  name?: string;
}): Logger {
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
