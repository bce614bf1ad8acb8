/**
 * walrus-node configuration: the seed's flags and env vars (same names, same defaults) plus ours,
 * parsed once into a validated, frozen object with unit-suffixed fields. Every problem is a
 * ConfigError with a message an operator can act on; the binary prints it and exits with code 2.
 */
import { parseArgs } from 'node:util';
import { protocolLimits } from '../protocol/limits.js';
import { frameServerDefaults } from '../transport/frame-server.js';
import { metricsLimits } from '../metrics/limits.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type FsyncPolicyText = string;

export interface NodeConfig {
  readonly nodeId: number;
  readonly dataDir: string;
  readonly raftPort: number;
  readonly raftHost: string;
  readonly raftAdvertiseHost: string;
  readonly clientPort: number;
  readonly clientHost: string;
  /** host:port of an existing node's raft port, or null to bootstrap. */
  readonly join: string | null;
  readonly logFile: string | null;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Shared secret peers prove with a challenge-response; null runs the cluster open (logged loudly). */
  readonly clusterSecret: string | null;
  /** `always` | `interval:<ms>` | `never`. */
  readonly fsync: FsyncPolicyText;
  readonly segmentEntryCountMax: number;
  readonly monitorCheckMs: number;
  /** A segment replica silent this long is re-created on another voter (WALRUS_REPAIR_AFTER_MS). */
  readonly repairAfterMs: number;
  readonly recordSizeMaxBytes: number;
  readonly connectionCountMax: number;
  readonly idleTimeoutMs: number;
  /** A client frame must arrive whole within this long of its first byte (WALRUS_FRAME_DEADLINE_MS). */
  readonly frameDeadlineMs: number;
  /** Node-wide budget of partial client frames plus unflushed replies (WALRUS_BUFFERED_INPUT_MAX_BYTES). */
  readonly bufferedInputMaxBytes: number;
  /** Requests read from one client connection and not yet answered (WALRUS_INFLIGHT_MAX_PER_CONNECTION). */
  readonly inFlightMaxPerConnection: number;
  /** Reply bytes waiting for one client at which its requests stop being read (WALRUS_REPLY_PENDING_MAX_BYTES). */
  readonly replyPendingMaxBytesPerConnection: number;
  /** Default retention for new topics; null = keep forever. */
  readonly retentionMsDefault: number | null;
  readonly retentionBytesDefault: number | null;
  /**
   * Bytes kept free on the data directory's file system: below it appends and new segments are
   * refused with DISK_FULL. null = the default, min(64 MiB, 1% of the file system); 0 = none.
   */
  readonly diskReserveBytes: number | null;
  /** HTTP admin port (/metrics, /health, /ready); null = off (the default). */
  readonly adminPort: number | null;
  /** Admin bind address (default: --client-host). */
  readonly adminHost: string;
  /** Per-topic series per metrics family (WALRUS_METRICS_TOPICS_MAX, node/metrics/limits.ts). */
  readonly metricsTopicsMax: number;
  /** Client-port tokens (the gateway's token document format); null: the client port is open. */
  readonly clientTokensFile: string | null;
  /** The Walrus text protocol: `auto` serves it only when no client tokens are configured. */
  readonly textProtocol: 'auto' | 'on' | 'off';
  /** PEM files: with cert and key, the client and raft ports speak TLS. */
  readonly tlsCertFile: string | null;
  readonly tlsKeyFile: string | null;
  /** CA bundle peers' certificates must chain to (the raft port's clients verify servers with it). */
  readonly tlsCaFile: string | null;
  /** Mutual TLS on the raft port: peers present a certificate signed by --tls-ca. */
  readonly peerMtls: boolean;
}

export const nodeUsage = `Usage: walrus-node --node-id <n> [options]

Seed flags (same meaning and defaults as distributed Walrus):
  --node-id <n>                 unique node id, 1, 2, 3, … (required)
  --data-dir <dir>              root directory for storage (default ./data, env WALRUS_DATA_DIR)
  --raft-port <port>            port for Raft and internal RPC (default 6000)
  --raft-host <host>            Raft bind address (default 127.0.0.1)
  --raft-advertise-host <host>  address advertised to peers (default: --raft-host)
  --client-port <port>          client TCP port (default 8080)
  --client-host <host>          client bind address (default 127.0.0.1)
  --join <host:port>            raft address of an existing node to join (omit on node 1)
  --log-file <path>             write JSON logs to this file (default stdout)
Walrus-TS flags:
  --cluster-secret <secret>     shared peer secret (env WALRUS_CLUSTER_SECRET)
  --fsync <policy>              always | interval:<ms> | never (default always, env WALRUS_FSYNC)
  --disk-reserve-bytes <n>      bytes kept free: appends get DISK_FULL below it (default
                                min(64 MiB, 1% of the file system); 0 = none; env WALRUS_DISK_RESERVE_BYTES)
  --admin-port <port>           HTTP admin port: /metrics (Prometheus), /health, /ready (default off,
                                env WALRUS_ADMIN_PORT)
  --admin-host <host>           admin bind address (default: --client-host, env WALRUS_ADMIN_HOST)
  --log-level <level>           debug | info | warn | error (default info, env WALRUS_LOG_LEVEL or RUST_LOG)
  --client-tokens-file <file>   client-port tokens, {"tokens":[{"token":…,"scopes":[…]}]}: clients
                                authenticate first (env WALRUS_CLIENT_TOKENS_FILE; default: open)
  --text-protocol <mode>        auto | on | off: the Walrus text protocol cannot authenticate; auto
                                serves it only without client tokens (env WALRUS_TEXT_PROTOCOL)
  --tls-cert <file>             PEM certificate: the client and raft ports speak TLS (env WALRUS_TLS_CERT)
  --tls-key <file>              PEM private key of --tls-cert (env WALRUS_TLS_KEY)
  --tls-ca <file>               PEM CA bundle that peers' certificates chain to (env WALRUS_TLS_CA)
  --peer-mtls                   mutual TLS on the raft port: peers must present a certificate
                                signed by --tls-ca (env WALRUS_PEER_MTLS=1)
  -h, --help                    print this help

Signals:
  SIGTERM, SIGINT               graceful stop: hand leaderships over, drain, exit 0
  SIGHUP                        re-read --tls-cert, --tls-key, --tls-ca and --client-tokens-file without
                                a restart: new connections get them, open ones keep theirs; all is
                                replaced or nothing (a bad file is logged with code INVALID_CONFIG)

Environment:
  WALRUS_MAX_SEGMENT_ENTRIES    entries before segment rollover (default 1000000)
  WALRUS_MONITOR_CHECK_MS       monitor loop interval in ms (default 10000)
  WALRUS_REPAIR_AFTER_MS        a segment replica down this long is copied to another node (default 60000)
  WALRUS_DATA_DIR               default for --data-dir
  WALRUS_MAX_RECORD_BYTES       maximum record size (default 1048576)
  WALRUS_MAX_CONNECTIONS        client connections held at once (default 10000)
  WALRUS_IDLE_TIMEOUT_MS        idle client connections are closed after this (default 300000)
  WALRUS_FRAME_DEADLINE_MS      a client frame must arrive whole within this of its first byte (default 30000)
  WALRUS_BUFFERED_INPUT_MAX_BYTES  node-wide budget of partial client frames + unsent replies;
                                when spent, large frames and new connections get BUSY (default 268435456)
  WALRUS_INFLIGHT_MAX_PER_CONNECTION  requests read from one connection and not yet answered (default 1024)
  WALRUS_REPLY_PENDING_MAX_BYTES  reply bytes waiting for one client before its requests stop being read
                                (default 16777216)
  WALRUS_RETENTION_MS           default topic retention by age (default: none)
  WALRUS_RETENTION_BYTES        default topic retention by size (default: none)
  WALRUS_QUIET                  1 = log warnings and errors only (unless a log level is given)
  WALRUS_RAFT_TICK_MS           Raft tick (default 50); the election timeout is 10 ticks, randomised up to 20
  WALRUS_RAFT_ELECTION_TICKS    election timeout in ticks (default 10)
  WALRUS_METRICS_TOPICS_MAX     per-topic series in each /metrics family: the largest N (default 50)
  WALRUS_DISABLE_IO_URING       accepted for compatibility; Walrus-TS never uses io_uring
`;

type Env = Readonly<Record<string, string | undefined>>;

function parseIntStrict(name: string, text: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim())) throw new ConfigError(`${name} must be an integer, got '${text}'`);
  const value = Number(text.trim());
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got '${text}'`);
  }
  return value;
}

function parsePort(name: string, text: string): number {
  return parseIntStrict(name, text, 0, 65535);
}

function parseHostPort(name: string, text: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!match) throw new ConfigError(`${name} must be host:port, got '${text}'`);
  parsePort(name, match[2]!);
  return text;
}

export function parseFsyncText(text: string): FsyncPolicyText {
  if (text === 'always' || text === 'never') return text;
  const match = /^interval:(\d+)$/.exec(text);
  if (match && Number(match[1]) >= 1 && Number(match[1]) <= 60_000) return text;
  throw new ConfigError(`fsync policy must be always, never or interval:<1..60000 ms>, got '${text}'`);
}

const logLevels = ['debug', 'info', 'warn', 'error'] as const;

function parseLogLevel(text: string): NodeConfig['logLevel'] {
  // RUST_LOG may look like "info,walrus=debug": take the first bare level.
  const first = text.split(',').find((part) => !part.includes('=')) ?? 'info';
  const level = first.trim().toLowerCase() === 'trace' ? 'debug' : first.trim().toLowerCase();
  if ((logLevels as readonly string[]).includes(level)) return level as NodeConfig['logLevel'];
  throw new ConfigError(`log level must be one of ${logLevels.join(', ')}, got '${text}'`);
}

function optionalLimit(name: string, text: string | undefined): number | null {
  if (text === undefined || text === '') return null;
  return parseIntStrict(name, text, 1, Number.MAX_SAFE_INTEGER);
}

function diskReserve(flag: string | undefined, env: string | undefined): number | null {
  if (flag !== undefined) return parseIntStrict('--disk-reserve-bytes', flag, 0, Number.MAX_SAFE_INTEGER);
  if (env === undefined || env === '') return null;
  return parseIntStrict('WALRUS_DISK_RESERVE_BYTES', env, 0, Number.MAX_SAFE_INTEGER);
}

/** Parses argv (without node and script) and env. Throws ConfigError; returns 'help' for -h. */
export function parseNodeConfig(argv: readonly string[], env: Env): NodeConfig | 'help' {
  let parsed: ReturnType<typeof parseArgsFor>;
  try {
    parsed = parseArgsFor(argv);
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v['node-id'] === undefined) throw new ConfigError('--node-id is required');
  const raftHost = v['raft-host'] ?? '127.0.0.1';
  const config: NodeConfig = {
    nodeId: parseIntStrict('--node-id', v['node-id'], 1, 2 ** 31 - 1),
    dataDir: v['data-dir'] ?? env['WALRUS_DATA_DIR'] ?? './data',
    raftPort: parsePort('--raft-port', v['raft-port'] ?? '6000'),
    raftHost,
    raftAdvertiseHost: v['raft-advertise-host'] ?? raftHost,
    clientPort: parsePort('--client-port', v['client-port'] ?? '8080'),
    clientHost: v['client-host'] ?? '127.0.0.1',
    join: v.join === undefined ? null : parseHostPort('--join', v.join),
    logFile: v['log-file'] ?? null,
    logLevel: parseLogLevel(
      v['log-level'] ??
        env['WALRUS_LOG_LEVEL'] ??
        env['RUST_LOG'] ??
        (env['WALRUS_QUIET'] === '1' ? 'warn' : 'info'),
    ),
    clusterSecret: v['cluster-secret'] ?? env['WALRUS_CLUSTER_SECRET'] ?? null,
    fsync: parseFsyncText(v.fsync ?? env['WALRUS_FSYNC'] ?? 'always'),
    segmentEntryCountMax: parseIntStrict(
      'WALRUS_MAX_SEGMENT_ENTRIES',
      env['WALRUS_MAX_SEGMENT_ENTRIES'] ?? '1000000',
      1,
      2 ** 40,
    ),
    monitorCheckMs: parseIntStrict(
      'WALRUS_MONITOR_CHECK_MS',
      env['WALRUS_MONITOR_CHECK_MS'] ?? '10000',
      10,
      3_600_000,
    ),
    repairAfterMs: parseIntStrict(
      'WALRUS_REPAIR_AFTER_MS',
      env['WALRUS_REPAIR_AFTER_MS'] ?? '60000',
      1000,
      7 * 86_400_000,
    ),
    recordSizeMaxBytes: parseIntStrict(
      'WALRUS_MAX_RECORD_BYTES',
      env['WALRUS_MAX_RECORD_BYTES'] ?? String(1024 * 1024),
      1,
      1024 * 1024,
    ),
    connectionCountMax: parseIntStrict(
      'WALRUS_MAX_CONNECTIONS',
      env['WALRUS_MAX_CONNECTIONS'] ?? '10000',
      1,
      100_000,
    ),
    idleTimeoutMs: parseIntStrict(
      'WALRUS_IDLE_TIMEOUT_MS',
      env['WALRUS_IDLE_TIMEOUT_MS'] ?? '300000',
      100,
      86_400_000,
    ),
    frameDeadlineMs: parseIntStrict(
      'WALRUS_FRAME_DEADLINE_MS',
      env['WALRUS_FRAME_DEADLINE_MS'] ?? String(frameServerDefaults.frameDeadlineMs),
      100,
      86_400_000,
    ),
    bufferedInputMaxBytes: parseIntStrict(
      'WALRUS_BUFFERED_INPUT_MAX_BYTES',
      env['WALRUS_BUFFERED_INPUT_MAX_BYTES'] ?? String(frameServerDefaults.bufferedInputMaxBytes),
      // One maximum frame must fit beside the reserve kept for small frames.
      2 * protocolLimits.frameSizeMaxBytes,
      2 ** 40,
    ),
    inFlightMaxPerConnection: parseIntStrict(
      'WALRUS_INFLIGHT_MAX_PER_CONNECTION',
      env['WALRUS_INFLIGHT_MAX_PER_CONNECTION'] ?? String(frameServerDefaults.inFlightMaxPerConnection),
      1,
      65_536,
    ),
    replyPendingMaxBytesPerConnection: parseIntStrict(
      'WALRUS_REPLY_PENDING_MAX_BYTES',
      env['WALRUS_REPLY_PENDING_MAX_BYTES'] ?? String(frameServerDefaults.replyPendingMaxBytesPerConnection),
      protocolLimits.frameSizeMaxBytes,
      frameServerDefaults.writeBufferMaxBytes - 1,
    ),
    retentionMsDefault: optionalLimit('WALRUS_RETENTION_MS', env['WALRUS_RETENTION_MS']),
    retentionBytesDefault: optionalLimit('WALRUS_RETENTION_BYTES', env['WALRUS_RETENTION_BYTES']),
    diskReserveBytes: diskReserve(v['disk-reserve-bytes'], env['WALRUS_DISK_RESERVE_BYTES']),
    adminPort: adminPortOf(v['admin-port'] ?? env['WALRUS_ADMIN_PORT']),
    adminHost: v['admin-host'] ?? env['WALRUS_ADMIN_HOST'] ?? v['client-host'] ?? '127.0.0.1',
    metricsTopicsMax: parseIntStrict(
      'WALRUS_METRICS_TOPICS_MAX',
      env['WALRUS_METRICS_TOPICS_MAX'] ?? String(metricsLimits.topicSeriesCountMaxDefault),
      0,
      metricsLimits.topicSeriesCountMaxLimit,
    ),
    ...securityConfig(v, env),
  };
  if (config.dataDir === '') throw new ConfigError('--data-dir must not be empty');
  if ((config.tlsCertFile === null) !== (config.tlsKeyFile === null))
    throw new ConfigError('--tls-cert and --tls-key go together');
  if (config.peerMtls && (config.tlsCertFile === null || config.tlsCaFile === null))
    throw new ConfigError('--peer-mtls needs --tls-cert, --tls-key and --tls-ca');
  return Object.freeze(config);
}

function adminPortOf(text: string | undefined): number | null {
  if (text === undefined || text === '') return null;
  return parsePort('--admin-port', text);
}

function securityConfig(
  v: ReturnType<typeof parseArgsFor>['values'],
  env: Env,
): Pick<
  NodeConfig,
  'clientTokensFile' | 'textProtocol' | 'tlsCertFile' | 'tlsKeyFile' | 'tlsCaFile' | 'peerMtls'
> {
  const text = v['text-protocol'] ?? env['WALRUS_TEXT_PROTOCOL'] ?? 'auto';
  if (text !== 'auto' && text !== 'on' && text !== 'off')
    throw new ConfigError(`--text-protocol must be auto, on or off, got '${text}'`);
  const file = (flag: string | undefined, name: string): string | null => {
    const value = flag ?? env[name];
    return value === undefined || value === '' ? null : value;
  };
  return {
    clientTokensFile: file(v['client-tokens-file'], 'WALRUS_CLIENT_TOKENS_FILE'),
    textProtocol: text,
    tlsCertFile: file(v['tls-cert'], 'WALRUS_TLS_CERT'),
    tlsKeyFile: file(v['tls-key'], 'WALRUS_TLS_KEY'),
    tlsCaFile: file(v['tls-ca'], 'WALRUS_TLS_CA'),
    peerMtls: v['peer-mtls'] === true || env['WALRUS_PEER_MTLS'] === '1',
  };
}

function parseArgsFor(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      'node-id': { type: 'string' },
      'data-dir': { type: 'string' },
      'raft-port': { type: 'string' },
      'raft-host': { type: 'string' },
      'raft-advertise-host': { type: 'string' },
      'client-port': { type: 'string' },
      'client-host': { type: 'string' },
      join: { type: 'string' },
      'log-file': { type: 'string' },
      'log-level': { type: 'string' },
      'cluster-secret': { type: 'string' },
      fsync: { type: 'string' },
      'disk-reserve-bytes': { type: 'string' },
      'admin-port': { type: 'string' },
      'admin-host': { type: 'string' },
      'client-tokens-file': { type: 'string' },
      'text-protocol': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'peer-mtls': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
