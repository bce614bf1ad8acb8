/**
 * The node's security settings, read from the files the flags name (the one place that reads
 * them): the client port's tokens and whether it serves the Walrus text protocol, and the TLS
 * material of the client port, the raft port and the links to peers. At start a problem is a
 * ConfigError the binary prints (exit 2).
 *
 * SIGHUP (`reload`) reads every file again and replaces all of it or nothing: every file is read
 * and checked first (tokens parse, each certificate goes with its key, the CA bundle parses), and
 * only then are the tokens, both listeners' material and the peer links' context swapped, in one
 * synchronous step. New connections get the new material; open ones keep theirs (a connection
 * that authenticated with a token since removed keeps its rights until it closes). A reload that
 * would turn client authentication on or off (an empty token list, a file that appeared) is
 * refused: that needs a restart, which also re-decides the text protocol.
 */
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { ConfigError, type NodeConfig } from '../config/node-config.js';
import type { Logger } from '../log.js';
import { parseTokens, TokenTable } from '../protocol/access-tokens.js';
import { ErrorCode } from '../protocol/error-codes.js';
import { ClientAuth } from '../server/client-auth.js';
import { checkTlsMaterial, ServerTls, TlsMaterialError } from '../transport/tls-listener.js';

/** Failed TLS handshakes by listener, and the reloads so far (METRICS JSON, Prometheus). */
export interface SecurityFigures {
  readonly tlsHandshakeFailures: { readonly client: number; readonly raft: number };
  readonly reloadsSucceeded: number;
  readonly reloadsFailed: number;
  /** False after a failed reload until one succeeds (the node serves its previous material). */
  readonly lastReloadSucceeded: boolean;
}

export interface NodeSecurity {
  readonly auth: ClientAuth;
  /** Client port TLS (no client certificates: clients prove tokens). */
  readonly clientTls: ServerTls | undefined;
  /** Raft port TLS, mutual with --peer-mtls. */
  readonly peerTls: ServerTls | undefined;
  /**
   * How this node's peer links verify (and, mutual, present themselves to) other raft ports. Its
   * `secureContext` is read at each connect, so a link made or re-made after a reload uses the
   * new files.
   */
  readonly peerClientTls: tls.ConnectionOptions | undefined;
  /** Re-reads every file: all replaced, or nothing (then throws ConfigError and counts it). */
  reload(): void;
  figures(): SecurityFigures;
}

interface Material {
  readonly tokens: TokenTable | null;
  readonly tls: { readonly cert: string; readonly key: string; readonly ca?: string } | null;
}

function read(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${what} '${file}': ${(error as Error).message}`);
  }
}

/** Reads and checks every file the flags name; throws ConfigError naming the file at fault. */
function readMaterial(config: NodeConfig): Material {
  let tokens: TokenTable | null = null;
  if (config.clientTokensFile !== null) {
    const text = read(config.clientTokensFile, '--client-tokens-file');
    try {
      tokens = new TokenTable(parseTokens(text));
    } catch (error) {
      throw new ConfigError(`--client-tokens-file '${config.clientTokensFile}': ${(error as Error).message}`);
    }
  }
  if (config.tlsCertFile === null || config.tlsKeyFile === null) return { tokens, tls: null };
  const cert = read(config.tlsCertFile, '--tls-cert');
  const key = read(config.tlsKeyFile, '--tls-key');
  const ca = config.tlsCaFile === null ? undefined : read(config.tlsCaFile, '--tls-ca');
  const material = { cert, key, ...(ca === undefined ? {} : { ca }) };
  try {
    checkTlsMaterial(material);
  } catch (error) {
    if (!(error instanceof TlsMaterialError)) throw error;
    throw new ConfigError(
      `--tls-cert '${config.tlsCertFile}', --tls-key '${config.tlsKeyFile}'${
        ca === undefined ? '' : `, --tls-ca '${config.tlsCaFile}'`
      }: ${error.message}`,
    );
  }
  return { tokens, tls: material };
}

function peerClientContext(config: NodeConfig, material: NonNullable<Material['tls']>): tls.SecureContext {
  return tls.createSecureContext({
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    ...(config.peerMtls ? { cert: material.cert, key: material.key } : {}),
    minVersion: 'TLSv1.2',
  });
}

/** SHA-256 fingerprint of a PEM certificate, as `openssl x509 -fingerprint -sha256` prints it. */
export function certFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export function loadNodeSecurity(config: NodeConfig): NodeSecurity {
  const initial = readMaterial(config);
  const tokens = initial.tokens ?? new TokenTable([]);
  const textProtocol = config.textProtocol === 'auto' ? tokens.empty : config.textProtocol === 'on';
  const auth = new ClientAuth({ tokens, textProtocol });
  let reloadsSucceeded = 0;
  let reloadsFailed = 0;
  let lastReloadSucceeded = true;
  const tlsOn = initial.tls;
  const clientTls =
    tlsOn === null ? undefined : new ServerTls({ cert: tlsOn.cert, key: tlsOn.key, requestCert: false });
  const peerTls = tlsOn === null ? undefined : new ServerTls({ ...tlsOn, requestCert: config.peerMtls });
  let peerContext = tlsOn === null ? undefined : peerClientContext(config, tlsOn);
  const peerClientTls: tls.ConnectionOptions | undefined =
    peerContext === undefined
      ? undefined
      : {
          get secureContext(): tls.SecureContext | undefined {
            return peerContext;
          },
        };

  const reload = (): void => {
    let next: Material;
    let nextPeerContext: tls.SecureContext | undefined;
    try {
      next = readMaterial(config);
      if (next.tokens !== null && next.tokens.empty !== tokens.empty) {
        throw new ConfigError(
          `--client-tokens-file '${config.clientTokensFile}': ${
            next.tokens.empty ? 'holds no token (that would open the client port)' : 'now holds tokens'
          }; turning client authentication on or off needs a restart`,
        );
      }
      nextPeerContext = next.tls === null ? undefined : peerClientContext(config, next.tls);
    } catch (error) {
      reloadsFailed += 1;
      lastReloadSucceeded = false;
      // A signal handler must not crash the node: whatever went wrong is a refused reload.
      throw error instanceof ConfigError ? error : new ConfigError(`reload: ${(error as Error).message}`);
    }
    // Everything is read and checked: replace it all in this one synchronous step.
    if (next.tokens !== null) auth.replaceTokens(next.tokens);
    if (next.tls !== null) {
      clientTls?.replace({ cert: next.tls.cert, key: next.tls.key });
      peerTls?.replace(next.tls);
      peerContext = nextPeerContext;
    }
    reloadsSucceeded += 1;
    lastReloadSucceeded = true;
  };

  return {
    auth,
    clientTls,
    peerTls,
    peerClientTls,
    reload,
    figures: () => ({
      tlsHandshakeFailures: {
        client: clientTls?.handshakeFailureCount() ?? 0,
        raft: peerTls?.handshakeFailureCount() ?? 0,
      },
      reloadsSucceeded,
      reloadsFailed,
      lastReloadSucceeded,
    }),
  };
}

/**
 * SIGHUP: reloads and logs one line, info when everything was replaced (with what is served now),
 * error with code INVALID_CONFIG when nothing was (the previous material stays in service).
 */
export function reloadNodeSecurity(security: NodeSecurity, config: NodeConfig, logger: Logger): boolean {
  try {
    security.reload();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error(
      { code: ErrorCode.INVALID_CONFIG, err: error.message },
      'Reload failed: kept the previous TLS material and client tokens',
    );
    return false;
  }
  const cert = security.clientTls?.material.cert;
  logger.info(
    {
      clientTokens: config.clientTokensFile !== null,
      ...(cert === undefined ? {} : { certFingerprint256: certFingerprint(cert) }),
      caDigest:
        security.peerTls?.material.ca === undefined
          ? null
          : createHash('sha256').update(security.peerTls.material.ca).digest('hex').slice(0, 16),
    },
    'Reloaded TLS material and client tokens',
  );
  return true;
}

/** The `security` object of the METRICS JSON (snake_case like its other fields). */
export function securityJson(f: SecurityFigures): Record<string, unknown> {
  return {
    tls_handshake_failures: { client: f.tlsHandshakeFailures.client, raft: f.tlsHandshakeFailures.raft },
    reloads_succeeded: f.reloadsSucceeded,
    reloads_failed: f.reloadsFailed,
    last_reload_succeeded: f.lastReloadSucceeded,
  };
}
