/**
 * The one place a node's listeners are made: plain TCP, or TLS (`node:tls`) when the node has a
 * certificate. Shared by the client-port and raft-port servers so that both bound TLS the same
 * way: a TLS handshake must end within `handshakeTimeoutMs` (a client that never finishes one is
 * cut), and at most `handshakeCountMax` connections may be in their handshake beside the server's
 * own connection limit (further TCP connections are dropped by the kernel listener). A failed
 * handshake (a plaintext client, a certificate from another CA) closes that socket and is counted,
 * never logged one by one (a scanner must not flood the log).
 *
 * Rotation without a restart (SIGHUP, node-security.ts): a listener made from a `ServerTls` takes
 * the material that `ServerTls.replace` gives it (`tls.Server.setSecureContext`) for its NEW
 * connections; connections already open keep the session they negotiated. `checkTlsMaterial`
 * refuses material that is not whole (unparsable PEM, a key that is not the certificate's, a CA
 * bundle without a certificate) before anything is replaced, so a listener never serves a new
 * certificate with an old key.
 */
import assert from 'node:assert';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

/** A node's TLS material (PEM contents) for one listener. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** CA bundle that client certificates must chain to (with `requestCert`). */
  readonly ca?: string;
  /** Mutual TLS: a client without a certificate signed by `ca` is refused in the handshake. */
  readonly requestCert: boolean;
}

/** What a listener is made from: fixed material, or material the node may replace while it serves. */
export type TlsServerSettings = TlsMaterial | ServerTls;

export const tlsListenerLimits = {
  handshakeTimeoutMs: 10_000,
  /** Connections in their TLS handshake at once, above the server's connection limit. */
  handshakeCountMax: 256,
  /** Listeners one ServerTls serves (a node makes two: client and raft port). */
  serverCountMax: 8,
  /** Certificates in one CA bundle. */
  caCertCountMax: 1_000,
} as const;

/** Material that cannot be served; `message` names the part (certificate, key, CA bundle). */
export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Throws TlsMaterialError unless the certificate and key parse and belong together and the CA
 * bundle (when given) holds at least one certificate, every one parsable. `tls.createSecureContext`
 * alone would take a CA file of garbage without a word (and then refuse every peer).
 */
export function checkTlsMaterial(material: { cert?: string; key?: string; ca?: string }): void {
  if ((material.cert === undefined) !== (material.key === undefined))
    throw new TlsMaterialError('a certificate and its key go together');
  if (material.cert !== undefined && material.key !== undefined) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(material.cert);
    } catch (error) {
      throw new TlsMaterialError(`the certificate does not parse: ${(error as Error).message}`);
    }
    let matches: boolean;
    try {
      matches = cert.checkPrivateKey(createPrivateKey(material.key));
    } catch (error) {
      throw new TlsMaterialError(`the private key does not parse: ${(error as Error).message}`);
    }
    if (!matches) throw new TlsMaterialError('the private key is not the certificate’s');
  }
  if (material.ca !== undefined) {
    const blocks = material.ca.match(pemCertificate) ?? [];
    if (blocks.length === 0) throw new TlsMaterialError('the CA bundle holds no PEM certificate');
    if (blocks.length > tlsListenerLimits.caCertCountMax)
      throw new TlsMaterialError(
        `the CA bundle holds more than ${tlsListenerLimits.caCertCountMax} certificates`,
      );
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block);
      } catch (error) {
        throw new TlsMaterialError(`CA certificate ${i + 1} does not parse: ${(error as Error).message}`);
      }
    }
  }
  try {
    tls.createSecureContext({
      ...(material.cert === undefined ? {} : { cert: material.cert, key: material.key }),
      ...(material.ca === undefined ? {} : { ca: material.ca }),
    });
  } catch (error) {
    throw new TlsMaterialError((error as Error).message);
  }
}

function secureContextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    minVersion: 'TLSv1.2',
  };
}

/**
 * One port's TLS material that SIGHUP may replace, and the port's count of failed handshakes. The
 * listeners made from it (createListener) take each replacement for their new connections.
 * `requestCert` is the port's policy, fixed at start: a replacement keeps it.
 */
export class ServerTls {
  private materialNow: TlsMaterial;
  private readonly servers = new Set<tls.Server>();
  private failures = 0;

  constructor(material: TlsMaterial) {
    checkTlsMaterial(material);
    this.materialNow = material;
  }

  get material(): TlsMaterial {
    return this.materialNow;
  }

  /**
   * Checks `material` (checkTlsMaterial: throws, nothing changed) and then gives it to every
   * listener made from this one; their new connections present it, open ones are not touched.
   */
  replace(material: Omit<TlsMaterial, 'requestCert'>): void {
    const next: TlsMaterial = { ...material, requestCert: this.materialNow.requestCert };
    checkTlsMaterial(next);
    this.materialNow = next;
    for (const server of this.servers) server.setSecureContext(secureContextOptions(next));
  }

  /** TLS handshakes that failed on the listeners made from this one. */
  handshakeFailureCount(): number {
    return this.failures;
  }

  /** @internal createListener's registration of a listener and of its failed handshakes. */
  attach(server: tls.Server): void {
    assert(this.servers.size < tlsListenerLimits.serverCountMax, 'too many listeners for one ServerTls');
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** @internal */
  countFailure(): void {
    this.failures += 1;
  }
}

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
  const shared = settings instanceof ServerTls ? settings : null;
  const material = shared?.material ?? (settings as TlsMaterial);
  let failures = 0;
  const server = tls.createServer(
    {
      ...secureContextOptions(material),
      requestCert: material.requestCert,
      rejectUnauthorized: material.requestCert,
      handshakeTimeout: tlsListenerLimits.handshakeTimeoutMs,
    },
    onSocket,
  );
  server.maxConnections = connectionCountMax + tlsListenerLimits.handshakeCountMax;
  server.on('tlsClientError', (_err, socket) => {
    failures += 1;
    shared?.countFailure();
    socket.destroy();
  });
  shared?.attach(server);
  return { server, tlsFailureCount: () => failures };
}
