/** npm start's flags (infra/local/start.ts): ports derived from --base-port, bad flags named. */
import path from 'node:path';
import test from 'ava';
import { parseStartArgs } from '../../../infra/local/start.js';

test('defaults are the seed quick-start ports', (t) => {
  t.like(parseStartArgs([]), {
    nodeCount: 3,
    clientPorts: [9091, 9092, 9093],
    raftPorts: [6001, 6002, 6003],
    gatewayPort: 3000,
    dataDir: path.resolve('./data'),
    gateway: true,
  });
});

test('--base-port moves client and raft ports together; --nodes and --gateway-port are taken', (t) => {
  t.like(parseStartArgs(['--base-port', '19091', '--nodes', '5', '--gateway-port', '4000']), {
    nodeCount: 5,
    clientPorts: [19091, 19092, 19093, 19094, 19095],
    raftPorts: [16001, 16002, 16003, 16004, 16005],
    gatewayPort: 4000,
  });
  t.is(parseStartArgs(['--help']), 'help');
});

test('bad flags are refused by name', (t) => {
  t.throws(() => parseStartArgs(['--nodes', '0']), { message: /--nodes must be 1\.\.9/ });
  t.throws(() => parseStartArgs(['--nodes', 'three']), { message: /--nodes/ });
  t.throws(() => parseStartArgs(['--base-port', '100']), { message: /--base-port must leave room/ });
  t.throws(() => parseStartArgs(['--base-port', '65535']), { message: /--base-port must leave room/ });
  t.throws(() => parseStartArgs(['--gateway-port', 'http']), { message: /--gateway-port must be a port/ });
  t.throws(() => parseStartArgs(['--gateway-port', '9092']), { message: /one of the nodes' ports/ });
  t.throws(() => parseStartArgs(['--bogus']), { message: /--bogus/ });
});
