/**
 * Gateway command line and env → a validated, frozen config. Flags:
 * `--port 3000 --host 127.0.0.1 --nodes host:port,host:port --tokens-file FILE --tls-cert FILE
 *  --tls-key FILE --cors-origins '*'|a,b --access-log off|on|0.1 --node-token-file FILE
 *  --node-tls-ca FILE`. Env: WALRUS_NODES, WALRUS_GATEWAY_TOKENS (JSON), WALRUS_GATEWAY_TOKENS_FILE,
 * WALRUS_GATEWAY_PORT, WALRUS_LOG_LEVEL, WALRUS_ACCESS_LOG, WALRUS_NODE_TOKEN, WALRUS_NODE_TOKEN_FILE,
 * WALRUS_NODE_TLS_CA.
 * The node settings are how the gateway itself reaches the nodes' client ports: the client token
 * it proves (one of the nodes' --client-tokens-file, with the scopes its own users need) and the
 * CA that signed the nodes' certificates when they speak TLS. SIGHUP re-reads the tokens file, the
 * TLS files, the nodes' CA file and the node token file (reload.ts).
 */
import fs from 'node:fs';
import { tokenLengthMax, tokenLengthMin } from '../node/protocol/access-tokens.js';
import { parseTokens, type TokenGrant } from './middleware/auth.js';
import type { CorsOrigins } from './middleware/cors.js';
import { parseAccessLogSetting } from './middleware/access-log.js';

export interface GatewayConfig {
  readonly port: number;
  readonly host: string;
  readonly nodes: readonly string[];
  readonly tokens: readonly TokenGrant[];
  readonly tls: { readonly cert: string; readonly key: string } | null;
  /**
   * The files SIGHUP re-reads (gateway/reload.ts): tokens (null: none, or the env's JSON), TLS,
   * nodes' CA, the gateway's own node token (null: none, or WALRUS_NODE_TOKEN).
   */
  readonly files: {
    readonly tokens: string | null;
    readonly tls: { readonly cert: string; readonly key: string } | null;
    readonly nodeCa: string | null;
    readonly nodeToken: string | null;
  };
  readonly corsOrigins: CorsOrigins;
  readonly logLevel: string;
  /** Fraction of requests in the access log: 0 (off, the default), 1 (every one) or in between. */
  readonly accessLogSampleRate: number;
  /** How the gateway reaches the nodes: its client token and the nodes' CA (TLS). */
  readonly nodeAccess: { readonly token?: string; readonly tls?: { readonly ca: string } };
}

export const gatewayUsage = `usage: walrus-gateway [--port 3000] [--host 127.0.0.1] --nodes host:port[,host:port…]
  [--tokens-file tokens.json] [--tls-cert cert.pem --tls-key key.pem] [--cors-origins '*'|origin,origin]
  [--access-log off|on|<fraction>] [--node-token-file node-token.txt] [--node-tls-ca nodes-ca.pem]
SIGHUP re-reads --tokens-file, --tls-cert, --tls-key, --node-tls-ca and --node-token-file without a restart: all replaced, or nothing
(a bad file is logged with code INVALID_CONFIG and the previous ones stay in service).`;

const nodeAddressPattern = /^[A-Za-z0-9.-]+:[0-9]{1,5}$/;

/** The gateway's node token from its file's text (trimmed); throws unless its length is allowed. */
export function parseNodeToken(text: string): string {
  const token = text.trim();
  if (token.length < tokenLengthMin || token.length > tokenLengthMax)
    throw new Error(`the node token must be ${tokenLengthMin}..${tokenLengthMax} characters`);
  return token;
}

export function parseGatewayArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): GatewayConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new Error(gatewayUsage);
    const eq = arg.indexOf('=');
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}'\n${gatewayUsage}`);
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    else {
      const value = argv[i + 1];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      flags.set(arg.slice(2), value);
      i++;
    }
  }
  const known = new Set([
    'port',
    'host',
    'nodes',
    'tokens-file',
    'tls-cert',
    'tls-key',
    'cors-origins',
    'access-log',
    'node-token-file',
    'node-tls-ca',
  ]);
  for (const name of flags.keys())
    if (!known.has(name)) throw new Error(`unknown flag --${name}\n${gatewayUsage}`);

  const port = Number(flags.get('port') ?? env['WALRUS_GATEWAY_PORT'] ?? '3000');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
  const nodes = (flags.get('nodes') ?? env['WALRUS_NODES'] ?? '127.0.0.1:9091')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (nodes.length === 0 || nodes.some((n) => !nodeAddressPattern.test(n)))
    throw new Error('--nodes must be host:port[,host:port…]');

  let tokens: TokenGrant[] = [];
  const tokensFile = flags.get('tokens-file') ?? env['WALRUS_GATEWAY_TOKENS_FILE'];
  if (tokensFile !== undefined) tokens = parseTokens(fs.readFileSync(tokensFile, 'utf8'));
  else if (env['WALRUS_GATEWAY_TOKENS'] !== undefined) tokens = parseTokens(env['WALRUS_GATEWAY_TOKENS']);

  const cert = flags.get('tls-cert');
  const key = flags.get('tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new Error('--tls-cert and --tls-key go together');

  const corsFlag = flags.get('cors-origins');
  const corsOrigins: CorsOrigins =
    corsFlag === undefined || corsFlag === ''
      ? null
      : corsFlag === '*'
        ? '*'
        : corsFlag.split(',').map((s) => s.trim());

  const tokenFile = flags.get('node-token-file') ?? env['WALRUS_NODE_TOKEN_FILE'];
  const nodeTokenText =
    tokenFile !== undefined ? fs.readFileSync(tokenFile, 'utf8') : env['WALRUS_NODE_TOKEN'];
  const nodeToken = nodeTokenText === undefined ? undefined : parseNodeToken(nodeTokenText);
  const nodeCa = flags.get('node-tls-ca') ?? env['WALRUS_NODE_TLS_CA'];

  return Object.freeze({
    nodeAccess: {
      ...(nodeToken === undefined ? {} : { token: nodeToken }),
      ...(nodeCa === undefined ? {} : { tls: { ca: fs.readFileSync(nodeCa, 'utf8') } }),
    },
    port,
    host: flags.get('host') ?? '127.0.0.1',
    nodes,
    tokens,
    tls:
      cert !== undefined && key !== undefined
        ? { cert: fs.readFileSync(cert, 'utf8'), key: fs.readFileSync(key, 'utf8') }
        : null,
    files: {
      tokens: tokensFile ?? null,
      tls: cert !== undefined && key !== undefined ? { cert, key } : null,
      nodeCa: nodeCa ?? null,
      nodeToken: tokenFile ?? null,
    },
    corsOrigins,
    logLevel: env['WALRUS_LOG_LEVEL'] ?? 'info',
    accessLogSampleRate: parseAccessLogSetting(flags.get('access-log') ?? env['WALRUS_ACCESS_LOG']),
  });
}
