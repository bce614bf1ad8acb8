/**
 * One pipelined connection per peer address, created on first use. Pipelining makes one
 * connection per peer enough (many requests in flight each), so the pool is a bounded map, not a
 * set of sockets per peer. At `peerCountMax` peers the least recently used one is closed
 * (its pending requests fail UNAVAILABLE; callers retry elsewhere).
 */
import assert from 'node:assert';
import { ErrorCode } from '../protocol/error-codes.js';
import { PipelinedConnection, type PipelinedConnectionOptions } from './pipelined-connection.js';
import { TransportError } from './transport-error.js';

export const connectionPoolDefaults = {
  /** Peers with an open connection at once. */
  peerCountMax: 256,
} as const;

export type PoolConnectionOptions = Omit<PipelinedConnectionOptions, 'host' | 'port'>;

export class ConnectionPool {
  private readonly connections = new Map<string, PipelinedConnection>();
  /** The key used last: asked again (the common case), the LRU order is already right. */
  private lastKey: string | undefined;
  private closed = false;

  constructor(
    private readonly options: PoolConnectionOptions = {},
    private readonly peerCountMax: number = connectionPoolDefaults.peerCountMax,
  ) {
    assert(peerCountMax > 0);
  }

  /** The connection to `host:port` (key is the canonical address string). */
  get(key: string, host: string, port: number): PipelinedConnection {
    if (this.closed) throw new TransportError(ErrorCode.UNAVAILABLE, 'the connection pool is closed', false);
    const existing = this.connections.get(key);
    if (existing !== undefined && existing.state !== 'closed') {
      if (key !== this.lastKey) {
        this.connections.delete(key);
        this.connections.set(key, existing);
        this.lastKey = key;
      }
      return existing;
    }
    if (this.connections.size >= this.peerCountMax) {
      const [oldestKey, oldest] = this.connections.entries().next().value!;
      this.connections.delete(oldestKey);
      void oldest.close();
    }
    const conn = new PipelinedConnection({ ...this.options, host, port });
    this.connections.set(key, conn);
    this.lastKey = key;
    return conn;
  }

  size(): number {
    return this.connections.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}
