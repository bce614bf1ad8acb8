/**
 * Parsing of `host:port` node addresses (client ports), including bracketed IPv6 (`[::1]:9091`).
 * Bad addresses are operating errors (a typo in a flag): BAD_REQUEST, never an exception of
 * another kind.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';

export interface NodeAddress {
  readonly host: string;
  readonly port: number;
  /** Canonical `host:port` (IPv6 in brackets), used as the key of connections and caches. */
  readonly key: string;
}

export function parseNodeAddress(addr: string): NodeAddress {
  const text = typeof addr === 'string' ? addr.trim() : '';
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^\s:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) {
    throw new WalrusError(ErrorCode.BAD_REQUEST, `node address '${String(addr)}' is not host:port`);
  }
  const host = m[1]!;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) {
    throw new WalrusError(ErrorCode.BAD_REQUEST, `node address '${text}' has port ${port} outside 1-65535`);
  }
  const key = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return { host, port, key };
}
