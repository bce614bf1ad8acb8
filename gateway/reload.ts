/**
 * SIGHUP on walrus-gateway: re-reads the tokens file, the HTTPS certificate and key, the CA it
 * checks the nodes' certificates against (--node-tls-ca) and the token it proves to them
 * (--node-token-file), and replaces all of them or nothing. Every file is read and checked first (the token document
 * parses, the key is the certificate's); only then are the tokens swapped and the certificate
 * given to the HTTPS server (`tls.Server.setSecureContext`), in one synchronous step. New requests
 * are checked against the new tokens and new connections get the new certificate; open
 * connections keep their TLS session, and an SSE tail already open keeps streaming. Connections
 * to the nodes made from then on (a node restarted with a certificate from a new CA) trust the new
 * CA bundle (NodeTrust); those open keep theirs. Likewise the gateway's own node token
 * (--node-token-file, NodeCredential): connections to the nodes made afterwards prove the new
 * token, those open stay authenticated (a node keeps connections whose token it has since
 * removed, until they close), so a token is rotated by adding the new one on the nodes, reloading
 * the gateway, then removing the old one.
 *
 * A tokens file that would open a closed gateway (no token left) or close an open one is refused:
 * that needs a restart. Tokens given as JSON in WALRUS_GATEWAY_TOKENS are not re-read (no file).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { type GatewayConfig, parseNodeToken } from './config.js';
import { type Authenticator, parseTokens, type TokenGrant } from './middleware/auth.js';

/** A reload that replaced nothing; the message names the file at fault. */
export class GatewayReloadError extends Error {
  override readonly name = 'GatewayReloadError';
}

export interface GatewayReloadTarget {
  readonly files: GatewayConfig['files'];
  readonly auth: Authenticator;
  /** The HTTPS server; null when the gateway serves plain HTTP. */
  readonly server: tls.Server | null;
  /** How the gateway checks the nodes' certificates; null when it reaches them over plain TCP. */
  readonly nodeTrust: NodeTrust | null;
  /** The token the gateway proves to the nodes; null when it has none or it came from the environment. */
  readonly nodeCredential: NodeCredential | null;
}

/** The gateway's node token, read by the node client at each connect (`read`), replaced by `use`. */
export class NodeCredential {
  readonly read = (): string => this.token;

  constructor(private token: string) {}

  use(token: string): void {
    this.token = token;
  }
}

/** Certificates in one CA bundle. */
export const caCertCountMax = 1_000;

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Throws GatewayReloadError unless `ca` holds 1..caCertCountMax PEM certificates, each parsable
 * (`tls.createSecureContext` alone takes a file of garbage and then trusts no node).
 */
export function checkCaBundle(ca: string): void {
  const blocks = ca.match(pemCertificate) ?? [];
  if (blocks.length === 0) throw new GatewayReloadError('the CA bundle holds no PEM certificate');
  if (blocks.length > caCertCountMax)
    throw new GatewayReloadError(`the CA bundle holds more than ${caCertCountMax} certificates`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new GatewayReloadError(`CA certificate ${i + 1} does not parse: ${(error as Error).message}`);
    }
  }
}

/**
 * The CA bundle the gateway's node connections verify against. `options` goes to the WalrusClient
 * once; its `secureContext` is read at each connect, so `use` reaches every connection made
 * afterwards.
 */
export class NodeTrust {
  private context: tls.SecureContext;
  readonly options: tls.ConnectionOptions;

  constructor(ca: string) {
    this.context = NodeTrust.prepare(ca);
    const trust = this;
    this.options = {
      get secureContext(): tls.SecureContext {
        return trust.context;
      },
    };
  }

  /** A context for `ca`, checked (throws GatewayReloadError); `use` puts it in service. */
  static prepare(ca: string): tls.SecureContext {
    checkCaBundle(ca);
    return tls.createSecureContext({ ca });
  }

  use(context: tls.SecureContext): void {
    this.context = context;
  }
}

/** What a successful reload serves now. */
export interface GatewayReloaded {
  /** Tokens now in force; null when no tokens file is configured. */
  readonly tokenCount: number | null;
  /** SHA-256 fingerprint of the certificate served now; null without HTTPS. */
  readonly certFingerprint256: string | null;
}

function read(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new GatewayReloadError(`cannot read ${what} '${file}': ${(error as Error).message}`);
  }
}

/** Throws GatewayReloadError unless `key` is the private key of `cert` (both PEM). */
export function checkCertAndKey(cert: string, key: string): X509Certificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new GatewayReloadError(`the certificate does not parse: ${(error as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new GatewayReloadError(`the private key does not parse: ${(error as Error).message}`);
  }
  if (!matches) throw new GatewayReloadError('the private key is not the certificate’s');
  return x509;
}

/** Reads, checks, then replaces everything; throws GatewayReloadError having replaced nothing. */
export function reloadGateway(target: GatewayReloadTarget): GatewayReloaded {
  const { files } = target;
  let grants: TokenGrant[] | null = null;
  if (files.tokens !== null) {
    const text = read(files.tokens, '--tokens-file');
    try {
      grants = parseTokens(text);
    } catch (error) {
      throw new GatewayReloadError(`--tokens-file '${files.tokens}': ${(error as Error).message}`);
    }
    if ((grants.length === 0) !== target.auth.open) {
      throw new GatewayReloadError(
        `--tokens-file '${files.tokens}': ${
          grants.length === 0 ? 'holds no token (that would open the gateway)' : 'now holds tokens'
        }; opening or closing the gateway needs a restart`,
      );
    }
  }
  let served: { cert: string; key: string; x509: X509Certificate } | null = null;
  if (files.tls !== null && target.server !== null) {
    const cert = read(files.tls.cert, '--tls-cert');
    const key = read(files.tls.key, '--tls-key');
    try {
      const x509 = checkCertAndKey(cert, key);
      tls.createSecureContext({ cert, key });
      served = { cert, key, x509 };
    } catch (error) {
      throw new GatewayReloadError(
        `--tls-cert '${files.tls.cert}', --tls-key '${files.tls.key}': ${(error as Error).message}`,
      );
    }
  }
  let nodeContext: tls.SecureContext | null = null;
  if (files.nodeCa !== null && target.nodeTrust !== null) {
    const ca = read(files.nodeCa, '--node-tls-ca');
    try {
      nodeContext = NodeTrust.prepare(ca);
    } catch (error) {
      throw new GatewayReloadError(`--node-tls-ca '${files.nodeCa}': ${(error as Error).message}`);
    }
  }
  let nodeToken: string | null = null;
  if (files.nodeToken !== null && target.nodeCredential !== null) {
    const text = read(files.nodeToken, '--node-token-file');
    try {
      nodeToken = parseNodeToken(text);
    } catch (error) {
      throw new GatewayReloadError(`--node-token-file '${files.nodeToken}': ${(error as Error).message}`);
    }
  }
  // Everything is read and checked: replace it all in this one synchronous step.
  if (grants !== null) target.auth.replace(grants);
  if (nodeContext !== null) target.nodeTrust?.use(nodeContext);
  if (nodeToken !== null) target.nodeCredential?.use(nodeToken);
  if (served !== null) target.server?.setSecureContext({ cert: served.cert, key: served.key });
  return { tokenCount: grants?.length ?? null, certFingerprint256: served?.x509.fingerprint256 ?? null };
}
