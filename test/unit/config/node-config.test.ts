import test from 'ava';
import { ConfigError, parseNodeConfig } from '../../../node/config/node-config.js';

test('seed defaults hold when only --node-id is given', (t) => {
  const config = parseNodeConfig(['--node-id', '1'], {});
  t.not(config, 'help');
  if (config === 'help') return;
  t.like(config, {
    nodeId: 1,
    dataDir: './data',
    raftPort: 6000,
    raftHost: '127.0.0.1',
    raftAdvertiseHost: '127.0.0.1',
    clientPort: 8080,
    clientHost: '127.0.0.1',
    join: null,
    logFile: null,
    fsync: 'always',
    segmentEntryCountMax: 1_000_000,
    monitorCheckMs: 10_000,
    recordSizeMaxBytes: 1024 * 1024,
  });
  t.true(Object.isFrozen(config));
});

test('seed flags and env vars are read with their names', (t) => {
  const config = parseNodeConfig(
    [
      '--node-id=2',
      '--raft-port',
      '6002',
      '--raft-host',
      '0.0.0.0',
      '--raft-advertise-host',
      '10.0.0.2',
      '--client-port',
      '9092',
      '--client-host',
      '0.0.0.0',
      '--join',
      '127.0.0.1:6001',
      '--log-file',
      '/tmp/x.log',
    ],
    {
      WALRUS_DATA_DIR: '/srv/walrus',
      WALRUS_MAX_SEGMENT_ENTRIES: '10',
      WALRUS_MONITOR_CHECK_MS: '50',
      RUST_LOG: 'debug,walrus=trace',
    },
  );
  if (config === 'help') return t.fail();
  t.like(config, {
    nodeId: 2,
    dataDir: '/srv/walrus',
    raftPort: 6002,
    raftHost: '0.0.0.0',
    raftAdvertiseHost: '10.0.0.2',
    clientPort: 9092,
    clientHost: '0.0.0.0',
    join: '127.0.0.1:6001',
    logFile: '/tmp/x.log',
    segmentEntryCountMax: 10,
    monitorCheckMs: 50,
    logLevel: 'debug',
  });
  return undefined;
});

const bad: [string, string[], Record<string, string>, RegExp][] = [
  ['missing node id', [], {}, /--node-id is required/],
  ['non-numeric node id', ['--node-id', 'one'], {}, /integer/],
  ['zero node id', ['--node-id', '0'], {}, /between 1/],
  ['port out of range', ['--node-id', '1', '--client-port', '70000'], {}, /between 0 and 65535/],
  ['unknown flag', ['--node-id', '1', '--bogus'], {}, /bogus/],
  ['flag without value', ['--node-id'], {}, /argument missing|node-id/],
  ['bad join', ['--node-id', '2', '--join', 'nohostport'], {}, /host:port/],
  ['bad fsync', ['--node-id', '1', '--fsync', 'sometimes'], {}, /fsync policy/],
  [
    'bad segment entries',
    ['--node-id', '1'],
    { WALRUS_MAX_SEGMENT_ENTRIES: '-5' },
    /WALRUS_MAX_SEGMENT_ENTRIES/,
  ],
  ['bad monitor ms', ['--node-id', '1'], { WALRUS_MONITOR_CHECK_MS: 'soon' }, /WALRUS_MONITOR_CHECK_MS/],
  ['positional junk', ['--node-id', '1', 'extra'], {}, /extra|positional/i],
  ['bad log level', ['--node-id', '1', '--log-level', 'loud'], {}, /log level/],
];

for (const [name, argv, env, message] of bad) {
  test(`bad config is a ConfigError: ${name}`, (t) => {
    const error = t.throws(() => parseNodeConfig(argv, env), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', message);
  });
}

test('WALRUS_QUIET=1 lowers the default log level; an explicit level wins', (t) => {
  const quiet = parseNodeConfig(['--node-id', '1'], { WALRUS_QUIET: '1' });
  const explicit = parseNodeConfig(['--node-id', '1', '--log-level', 'debug'], { WALRUS_QUIET: '1' });
  t.is(quiet === 'help' ? undefined : quiet.logLevel, 'warn');
  t.is(explicit === 'help' ? undefined : explicit.logLevel, 'debug');
});

test('--help is recognised', (t) => {
  t.is(parseNodeConfig(['--help'], {}), 'help');
});

test('security flags: tokens, text protocol, TLS files and mutual TLS, from flags or env', (t) => {
  const open = parseNodeConfig(['--node-id', '1'], {});
  t.like(open, {
    clientTokensFile: null,
    textProtocol: 'auto',
    tlsCertFile: null,
    tlsKeyFile: null,
    tlsCaFile: null,
    peerMtls: false,
  });
  const flags = parseNodeConfig(
    [
      '--node-id',
      '1',
      '--client-tokens-file',
      't.json',
      '--text-protocol',
      'on',
      '--tls-cert',
      'c.pem',
      '--tls-key',
      'k.pem',
      '--tls-ca',
      'ca.pem',
      '--peer-mtls',
    ],
    {},
  );
  t.like(flags, {
    clientTokensFile: 't.json',
    textProtocol: 'on',
    tlsCertFile: 'c.pem',
    tlsKeyFile: 'k.pem',
    tlsCaFile: 'ca.pem',
    peerMtls: true,
  });
  const env = parseNodeConfig(['--node-id', '1'], {
    WALRUS_CLIENT_TOKENS_FILE: 'e.json',
    WALRUS_TEXT_PROTOCOL: 'off',
    WALRUS_TLS_CERT: 'c',
    WALRUS_TLS_KEY: 'k',
    WALRUS_TLS_CA: 'ca',
    WALRUS_PEER_MTLS: '1',
  });
  t.like(env, { clientTokensFile: 'e.json', textProtocol: 'off', peerMtls: true });
  t.throws(() => parseNodeConfig(['--node-id', '1', '--text-protocol', 'maybe'], {}), {
    instanceOf: ConfigError,
  });
  t.throws(() => parseNodeConfig(['--node-id', '1', '--tls-cert', 'c.pem'], {}), {
    instanceOf: ConfigError,
    message: /--tls-cert and --tls-key go together/,
  });
  t.throws(
    () => parseNodeConfig(['--node-id', '1', '--tls-cert', 'c', '--tls-key', 'k', '--peer-mtls'], {}),
    {
      instanceOf: ConfigError,
      message: /--peer-mtls needs/,
    },
  );
});
