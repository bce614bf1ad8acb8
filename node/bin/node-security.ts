/**
 * The node's security settings, read once at start from the files the flags name (the one place
 * that reads them): the client port's tokens and whether it serves the Walrus text protocol, and
 * the TLS material of the client port, the raft port and the links to peers. A problem is a
 * ConfigError the binary prints (exit 2).
 */
import fs from 'node:fs';
import type tls from 'node:tls';
import { ConfigError, type NodeConfig } from '../config/node-config.js';
import { parseTokens, TokenTable } from '../protocol/access-tokens.js';
import { ClientAuth } from '../server/client-auth.js';
import type { TlsServerSettings } from '../transport/tls-listener.js';

export interface NodeSecurity {
  readonly auth: ClientAuth;
  /** Client port TLS (no client certificates: clients prove tokens). */
  readonly clientTls: TlsServerSettings | undefined;
  /** Raft port TLS, mutual with --peer-mtls. */
  readonly peerTls: TlsServerSettings | undefined;
  /** How this node's peer links verify (and, mutual, present themselves to) other raft ports. */
  readonly peerClientTls: tls.ConnectionOptions | undefined;
}

function read(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${what} '${file}': ${(error as Error).message}`);
  }
}

export function loadNodeSecurity(config: NodeConfig): NodeSecurity {
  let tokens = new TokenTable([]);
  if (config.clientTokensFile !== null) {
    try {
      tokens = new TokenTable(parseTokens(read(config.clientTokensFile, '--client-tokens-file')));
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`--client-tokens-file '${config.clientTokensFile}': ${(error as Error).message}`);
    }
  }
  const textProtocol = config.textProtocol === 'auto' ? tokens.empty : config.textProtocol === 'on';
  const auth = new ClientAuth({ tokens, textProtocol });
  if (config.tlsCertFile === null || config.tlsKeyFile === null)
    return { auth, clientTls: undefined, peerTls: undefined, peerClientTls: undefined };
  const cert = read(config.tlsCertFile, '--tls-cert');
  const key = read(config.tlsKeyFile, '--tls-key');
  const ca = config.tlsCaFile === null ? undefined : read(config.tlsCaFile, '--tls-ca');
  return {
    auth,
    clientTls: { cert, key, requestCert: false },
    peerTls: { cert, key, ...(ca === undefined ? {} : { ca }), requestCert: config.peerMtls },
    peerClientTls: {
      ...(ca === undefined ? {} : { ca }),
      ...(config.peerMtls ? { cert, key } : {}),
    },
  };
}
