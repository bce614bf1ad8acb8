/** `--admin-port` / WALRUS_ADMIN_PORT: off unless given, validated, bound on --client-host by default. */
import test from 'ava';
import { ConfigError, type NodeConfig, parseNodeConfig } from '../../../node/config/node-config.js';
import { metricsLimits } from '../../../node/metrics/limits.js';

const parse = (argv: string[], env: Record<string, string> = {}): NodeConfig =>
  parseNodeConfig(['--node-id', '1', ...argv], env) as NodeConfig;

test('the admin port is off unless given', (t) => {
  t.is(parse([]).adminPort, null);
  t.is(parse([]).metricsTopicsMax, metricsLimits.topicSeriesCountMaxDefault);
});

test('--admin-port and WALRUS_ADMIN_PORT set it; the flag wins; the host follows --client-host', (t) => {
  const c = parse(['--admin-port', '9101', '--client-host', '0.0.0.0']);
  t.is(c.adminPort, 9101);
  t.is(c.adminHost, '0.0.0.0');
  t.is(parse([], { WALRUS_ADMIN_PORT: '9102' }).adminPort, 9102);
  t.is(parse(['--admin-port', '9103'], { WALRUS_ADMIN_PORT: '9102' }).adminPort, 9103);
  t.is(parse(['--admin-port', '9101', '--admin-host', '10.0.0.5']).adminHost, '10.0.0.5');
  t.is(parse([], { WALRUS_METRICS_TOPICS_MAX: '5' }).metricsTopicsMax, 5);
});

test('bad values are ConfigErrors naming the setting', (t) => {
  t.throws(() => parse(['--admin-port', 'http']), { instanceOf: ConfigError, message: /--admin-port/ });
  t.throws(() => parse(['--admin-port', '70000']), { instanceOf: ConfigError, message: /--admin-port/ });
  t.throws(() => parse([], { WALRUS_METRICS_TOPICS_MAX: '100000' }), {
    instanceOf: ConfigError,
    message: /WALRUS_METRICS_TOPICS_MAX/,
  });
});
