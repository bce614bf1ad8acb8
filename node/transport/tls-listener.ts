/**
 * The one place a node's listeners are made: plain TCP, or TLS (`node:tls`) when the node has a
 * certificate. Shared by the client-port and raft-port servers so that both bound TLS the same
 * way: a TLS handshake must end within `handshakeTimeoutMs` (a client that never finishes one is
 * cut), and at most `handshakeCountMax` connections may be in their handshake beside the server's
 * own connection limit (further TCP connections are dropped by the kernel listener). A failed
 * handshake (a plaintext client, a certificate from another CA) closes that socket and is counted,
 * never logged one by one (a scanner must not flood the log).
 */
import net from 'node:net';
import tls from 'node:tls';

/** A node's TLS material (PEM contents) for one listener. */
export interface TlsServerSettings {
  readonly cert: string;
  readonly key: string;
  /** CA bundle that client certificates must chain to (with `requestCert`). */
  readonly ca?: string;
  /** Mutual TLS: a client without a certificate signed by `ca` is refused in the handshake. */
  readonly requestCert: boolean;
}

export const tlsListenerLimits = {
  handshakeTimeoutMs: 10_000,
  /** Connections in their TLS handshake at once, above the server's connection limit. */
  handshakeCountMax: 256,
} as const;

export interface Listener {
  readonly server: net.Server;
  /** TLS handshakes that failed so far (0 for plain TCP). */
  tlsFailureCount(): number;
}

/** A listener calling `onSocket` for every accepted (and, with TLS, verified) connection. */
export function createListener(
  settings: TlsServerSettings | undefined,
  connectionCountMax: number,
  onSocket: (socket: net.Socket) => void,
): Listener {
  if (settings === undefined) {
    const server = net.createServer({ pauseOnConnect: false }, onSocket);
    return { server, tlsFailureCount: () => 0 };
  }
  let failures = 0;
  const server = tls.createServer(
    {
      cert: settings.cert,
      key: settings.key,
      ...(settings.ca === undefined ? {} : { ca: settings.ca }),
      requestCert: settings.requestCert,
      rejectUnauthorized: settings.requestCert,
      handshakeTimeout: tlsListenerLimits.handshakeTimeoutMs,
      minVersion: 'TLSv1.2',
    },
    onSocket,
  );
  server.maxConnections = connectionCountMax + tlsListenerLimits.handshakeCountMax;
  server.on('tlsClientError', (_err, socket) => {
    failures += 1;
    socket.destroy();
  });
  return { server, tlsFailureCount: () => failures };
}
