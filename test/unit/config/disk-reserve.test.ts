/** The disk reserve's flag and env var (node-config.ts): default, flag over env, 0, bad values. */
import test from 'ava';
import { ConfigError, parseNodeConfig } from '../../../node/config/node-config.js';

function reserveOf(argv: string[], env: Record<string, string>): number | null {
  const config = parseNodeConfig(['--node-id', '1', ...argv], env);
  if (config === 'help') throw new Error('help');
  return config.diskReserveBytes;
}

test('the disk reserve: default (null: the WAL picks min(64 MiB, 1%)), env, flag over env, 0', (t) => {
  t.is(reserveOf([], {}), null);
  t.is(reserveOf([], { WALRUS_DISK_RESERVE_BYTES: '1048576' }), 1_048_576);
  t.is(reserveOf(['--disk-reserve-bytes', '4096'], { WALRUS_DISK_RESERVE_BYTES: '1048576' }), 4096);
  t.is(reserveOf(['--disk-reserve-bytes=0'], {}), 0);
});

test('a bad disk reserve is a ConfigError naming it', (t) => {
  for (const [argv, env, name] of [
    [['--disk-reserve-bytes', '-1'], {}, '--disk-reserve-bytes'],
    [['--disk-reserve-bytes', '1MiB'], {}, '--disk-reserve-bytes'],
    [[], { WALRUS_DISK_RESERVE_BYTES: 'lots' }, 'WALRUS_DISK_RESERVE_BYTES'],
  ] as const) {
    const error = t.throws(() => reserveOf([...argv], { ...env }), { instanceOf: ConfigError });
    t.true(error?.message.includes(name), error?.message);
  }
});
