/**
 * Bytes in and out by port (seed 002's "Network traffic: Raft + client port traffic rates"),
 * counted without touching the transport: node:diagnostics_channel publishes every socket a
 * server accepts (`net.server.socket`) and every socket the process opens (`net.client.socket`).
 * An accepted socket is attributed by its local port to a role (client, raft, admin); a socket
 * this node opens goes to `peer_out` (raft links, replication and forwarding to peers). Each
 * socket's own counters (`bytesRead`, `bytesWritten`) are summed at scrape time for open sockets
 * and added to the role's total when it closes: the cost is per connection, never per byte.
 */
import diagnostics from 'node:diagnostics_channel';
import { metricsLimits } from './limits.js';

export const portRoles = ['client', 'raft', 'admin', 'peer_out'] as const;
export type PortRole = (typeof portRoles)[number];

/** What is read of a socket (a node:net Socket; sockets stay the transport's business). */
interface Socket {
  readonly localPort?: number | undefined;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  once(event: 'close', listener: () => void): unknown;
}

interface RoleBytes {
  readonly open: Set<Socket>;
  closedInBytes: number;
  closedOutBytes: number;
}

export class NetworkBytes {
  private readonly roles = new Map<PortRole, RoleBytes>();
  private readonly portToRole = new Map<number, PortRole>();
  private readonly onServerSocket = (message: unknown): void => {
    const socket = (message as { socket: Socket }).socket;
    const role = this.portToRole.get(socket.localPort ?? -1);
    if (role !== undefined) this.track(role, socket);
  };
  private readonly onClientSocket = (message: unknown): void => {
    this.track('peer_out', (message as { socket: Socket }).socket);
  };

  constructor() {
    for (const role of portRoles)
      this.roles.set(role, { open: new Set(), closedInBytes: 0, closedOutBytes: 0 });
    diagnostics.subscribe('net.server.socket', this.onServerSocket);
    diagnostics.subscribe('net.client.socket', this.onClientSocket);
  }

  /** Sockets accepted on `port` count towards `role` from now on. */
  assignPort(port: number, role: Exclude<PortRole, 'peer_out'>): void {
    this.portToRole.set(port, role);
  }

  private track(role: PortRole, socket: Socket): void {
    const r = this.roles.get(role)!;
    // Past the bound a socket is still counted, once, when it closes.
    if (r.open.size < metricsLimits.trackedSocketCountMax) r.open.add(socket);
    socket.once('close', () => {
      r.open.delete(socket);
      r.closedInBytes += socket.bytesRead;
      r.closedOutBytes += socket.bytesWritten;
    });
  }

  /** Bytes received and sent so far by role. */
  totals(): { role: PortRole; inBytes: number; outBytes: number }[] {
    return portRoles.map((role) => {
      const r = this.roles.get(role)!;
      let inBytes = r.closedInBytes;
      let outBytes = r.closedOutBytes;
      for (const s of r.open) {
        inBytes += s.bytesRead;
        outBytes += s.bytesWritten;
      }
      return { role, inBytes, outBytes };
    });
  }

  close(): void {
    diagnostics.unsubscribe('net.server.socket', this.onServerSocket);
    diagnostics.unsubscribe('net.client.socket', this.onClientSocket);
  }
}
