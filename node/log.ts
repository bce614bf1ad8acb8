/**
 * The one logger shape of nodes and gateway: `logger.info({ ...fields }, 'Message')`, one JSON line
 * per event (pino in production; see bin/logger.ts for the line shape). Modules take this interface
 * by injection and never create a logger themselves, so tests can capture what they log.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
