/**
 * walrus-cli driven as a user would: one-off subcommands (with exit codes) and the interactive
 * shell fed through stdin, against a real walrus-node.
 */
import { spawn } from 'node:child_process';
import test from 'ava';
import { type TestCluster, cliBin, startLocalCluster } from '../../helpers/local-cluster.js';

let cluster: TestCluster;
let addr: string;

test.before(async () => {
  cluster = await startLocalCluster();
  addr = cluster.clientAddrs[0]!;
});
test.after.always(async () => {
  await cluster?.destroy();
});

function cli(
  args: string[],
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin ?? '');
  });
}

test.serial('one-off subcommands work as in the seed CLI guide', async (t) => {
  t.like(await cli(['--addr', addr, 'register', 'clilogs']), { code: 0, stdout: 'OK\n' });
  t.like(await cli(['--addr', addr, 'put', 'clilogs', 'hello from distributed cluster']), {
    code: 0,
    stdout: 'OK\n',
  });
  t.like(await cli(['--addr', addr, 'put', 'clilogs', '"second entry"']), { code: 0 });
  t.like(await cli(['--addr', addr, 'get', 'clilogs']), {
    code: 0,
    stdout: 'OK hello from distributed cluster\n',
  });
  t.like(await cli(['--addr', addr, 'get', 'clilogs']), { code: 0, stdout: 'OK second entry\n' });
  t.like(await cli(['--addr', addr, 'get', 'clilogs']), { code: 0, stdout: 'EMPTY\n' });
  const state = await cli(['--addr', addr, 'state', 'clilogs']);
  t.is(state.code, 0);
  t.like(JSON.parse(state.stdout), { topic: 'clilogs', current_segment: 1, leader_node: 1 });
  t.true(state.stdout.includes('\n  "'), 'JSON is printed indented');
  const metrics = await cli(['--addr', addr, 'metrics']);
  t.like(JSON.parse(metrics.stdout), { id: 1, state: 'Leader', current_leader: 1 });
});

test.serial('exit codes: ERR → 1, bad usage → 2, no node → 1', async (t) => {
  const err = await cli(['--addr', addr, 'get', 'no-such-topic']);
  t.is(err.code, 1);
  t.regex(err.stderr, /ERR TOPIC_NOT_FOUND/);
  t.is((await cli(['--addr', addr, 'frobnicate'])).code, 2);
  t.is((await cli(['--addr', addr, 'put', 'only-topic'])).code, 2);
  t.is((await cli(['--bogus-flag'])).code, 2);
  const down = await cli(['--addr', '127.0.0.1:1', 'metrics']);
  t.is(down.code, 1);
  t.regex(down.stderr, /cannot talk to 127\.0\.0\.1:1/);
});

test.serial('the interactive shell runs commands from stdin and leaves on exit', async (t) => {
  const session = [
    'REGISTER shell',
    'PUT shell "quoted words here"',
    'put shell plain',
    'GET shell',
    'get shell',
    'GET shell',
    'FROB',
    'STATE shell',
    'exit',
    'GET shell',
  ].join('\n');
  const result = await cli(['--addr', addr], `${session}\n`);
  t.is(result.code, 0);
  const lines = result.stdout.split('\n');
  t.deepEqual(lines.slice(0, 7), [
    'OK',
    'OK',
    'OK',
    'OK quoted words here',
    'OK plain',
    'EMPTY',
    "unknown command 'FROB' (register, put, get, state, metrics)",
  ]);
  t.regex(result.stdout, /"topic": "shell"/);
  // Nothing after `exit` ran: the third record would have been EMPTY again, the state shows 2 records.
  t.is(result.stdout.match(/EMPTY/g)?.length, 1);
});

test.serial('quit and q also leave the shell', async (t) => {
  for (const word of ['quit', 'q']) {
    const r = await cli(['--addr', addr], `METRICS\n${word}\nMETRICS\n`);
    t.is(r.code, 0);
    t.is(r.stdout.match(/"state": "Leader"/g)?.length, 1);
  }
});
