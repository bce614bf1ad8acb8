/**
 * Issue 11 §4, client-port authentication: a node started with --client-tokens-file serves a
 * binary connection only after it proved a token (UNAUTHENTICATED and closed otherwise), checks
 * scopes and topic prefixes per request (FORBIDDEN), bounds failed attempts per host (BUSY), and
 * refuses the Walrus text protocol unless it is turned on explicitly (then logged at warn). Against
 * the code before, every one of these requests was served without a token.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { WalrusClient } from '../../../node/client/walrus-client.js';
import { decodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { TokenTable } from '../../../node/protocol/access-tokens.js';
import { ErrorCode, type WalrusError } from '../../../node/protocol/error-codes.js';
import { ClientAuth, clientAuthLimits } from '../../../node/server/client-auth.js';
import { startLocalCluster, tempDir } from '../../helpers/local-cluster.js';
import { frame, portOf, rawExchange, splitFrames } from '../../helpers/raw-socket.js';
import { eventually } from '../../helpers/eventually.js';

const tokens = {
  tokens: [
    { token: 'admin-token-0001', scopes: ['admin'] },
    { token: 'reader-token-001', scopes: ['read'] },
    { token: 'app-writer-0001', scopes: ['read', 'write'], topicPrefixes: ['app-'] },
  ],
};

function tokensFile(): string {
  const dir = tempDir('tokens');
  const file = path.join(dir, 'tokens.json');
  fs.writeFileSync(file, JSON.stringify(tokens));
  return file;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as WalrusError).code;
  }
}

test('ClientAuth: scopes and topic prefixes decide per request; failures are bounded per host', (t) => {
  let nowMs = 1_000;
  const auth = new ClientAuth({
    tokens: new TokenTable(tokens.tokens as never),
    textProtocol: false,
    nowMs: () => nowMs,
  });
  t.true(auth.required);
  t.is(auth.refusal(1, { op: 'ping' })?.code, ErrorCode.UNAUTHENTICATED);
  t.deepEqual(auth.authenticate(1, '10.0.0.1:5000', 'reader-token-001'), ['read']);
  t.is(auth.refusal(1, { op: 'listTopics' }), null);
  t.is(auth.refusal(1, { op: 'append', topic: 'x', records: [] })?.code, ErrorCode.FORBIDDEN);
  t.is(auth.refusal(1, { op: 'createTopic', topic: 'x' })?.code, ErrorCode.FORBIDDEN);
  auth.authenticate(2, '10.0.0.1:5001', 'app-writer-0001');
  t.is(auth.refusal(2, { op: 'append', topic: 'app-1', records: [] }), null);
  t.is(auth.refusal(2, { op: 'append', topic: 'other', records: [] })?.code, ErrorCode.FORBIDDEN);
  auth.forget(1);
  t.is(auth.refusal(1, { op: 'ping' })?.code, ErrorCode.UNAUTHENTICATED, 'a closed connection is forgotten');

  for (let i = 0; i < clientAuthLimits.failuresPerRemoteMax; i++) {
    const error = t.throws(() => auth.authenticate(10 + i, '10.0.0.9:6000', 'wrong-token-xyz'));
    t.is((error as WalrusError).code, ErrorCode.UNAUTHENTICATED);
  }
  const busy = t.throws(() => auth.authenticate(99, '10.0.0.9:6001', 'admin-token-0001'));
  t.is((busy as WalrusError).code, ErrorCode.BUSY, 'even a right token waits once the host failed too often');
  t.deepEqual(auth.authenticate(100, '10.0.0.8:6000', 'admin-token-0001').sort(), ['admin', 'read', 'write']);
  nowMs += clientAuthLimits.failureWindowMs;
  t.deepEqual(auth.authenticate(101, '10.0.0.9:6002', 'admin-token-0001').sort(), ['admin', 'read', 'write']);
});

test('ClientAuth: with no tokens everything is open and the text protocol is on', (t) => {
  const auth = ClientAuth.open();
  t.false(auth.required);
  t.true(auth.textProtocol);
  t.is(auth.refusal(7, { op: 'deleteTopic', topic: 'x' }), null);
});

test('a node with client tokens serves only authenticated binary clients, within their scopes', async (t) => {
  const file = tokensFile();
  const cluster = await startLocalCluster({ nodeCount: 1, extraArgs: ['--client-tokens-file', file] });
  const addrs = cluster.clientAddrs;
  const admin = new WalrusClient({ nodes: addrs, token: 'admin-token-0001', retryCountMax: 2 });
  const reader = new WalrusClient({ nodes: addrs, token: 'reader-token-001', retryCountMax: 0 });
  const appWriter = new WalrusClient({ nodes: addrs, token: 'app-writer-0001', retryCountMax: 0 });
  const anonymous = new WalrusClient({ nodes: addrs, retryCountMax: 0 });
  const wrong = new WalrusClient({ nodes: addrs, token: 'not-a-token-at-all', retryCountMax: 0 });
  t.teardown(async () => {
    for (const c of [admin, reader, appWriter, anonymous, wrong]) await c.close();
    await cluster.destroy();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });

  await admin.createTopic('app-orders');
  await admin.createTopic('secret');
  await admin.append('app-orders', [{ value: Buffer.from('one') }]);

  t.is(await codeOf(anonymous.listTopics()), ErrorCode.UNAUTHENTICATED);
  t.is(await codeOf(wrong.listTopics()), ErrorCode.UNAUTHENTICATED);

  t.is((await reader.read('app-orders', 0)).records.length, 1);
  t.is(await codeOf(reader.append('app-orders', [{ value: Buffer.from('x') }])), ErrorCode.FORBIDDEN);
  t.is(await codeOf(reader.createTopic('mine')), ErrorCode.FORBIDDEN);

  t.is((await appWriter.append('app-orders', [{ value: Buffer.from('two') }])).firstOffset, 1);
  t.is(await codeOf(appWriter.read('secret', 0)), ErrorCode.FORBIDDEN);
  t.deepEqual(
    (await appWriter.listTopics()).map((x) => x.name),
    ['app-orders'],
    'a prefix-limited token lists only its topics',
  );

  // Raw: a request before authenticate is answered UNAUTHENTICATED and the connection closed.
  const port = portOf(addrs[0]!);
  const unauth = await rawExchange(port, [frame(encodeRequest(7, { op: 'listTopics' }))]);
  const [reply] = splitFrames(unauth.data);
  const decoded = decodeReply(reply!);
  t.is(decoded.kind, 'error');
  t.is(decoded.kind === 'error' ? decoded.error.code : '', ErrorCode.UNAUTHENTICATED);
  t.true(unauth.closed, 'the node closed the connection');

  // The Walrus text protocol cannot carry a token: refused, connection closed.
  const text = await rawExchange(port, [frame('METRICS')]);
  t.regex(splitFrames(text.data)[0]?.toString('utf8') ?? '', /^ERR UNAUTHENTICATED /);
  t.true(text.closed);
});

test('failed authentications are bounded per host: BUSY after the limit, the connection closed', async (t) => {
  const file = tokensFile();
  const cluster = await startLocalCluster({ nodeCount: 1, extraArgs: ['--client-tokens-file', file] });
  t.teardown(async () => {
    await cluster.destroy();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });
  const port = portOf(cluster.clientAddrs[0]!);
  const attempt = async (token: string): Promise<{ code: string | undefined; closed: boolean }> => {
    const x = await rawExchange(port, [frame(encodeRequest(1, { op: 'authenticate', token }))]);
    const decoded = decodeReply(splitFrames(x.data)[0]!);
    return { code: decoded.kind === 'error' ? decoded.error.code : undefined, closed: x.closed };
  };
  for (let i = 0; i < clientAuthLimits.failuresPerRemoteMax; i++)
    t.deepEqual(await attempt(`guess-number-${i}`), { code: ErrorCode.UNAUTHENTICATED, closed: true });
  t.deepEqual(await attempt('admin-token-0001'), { code: ErrorCode.BUSY, closed: true });
});

test('--text-protocol on serves the text protocol beside tokens, and says so at warn', async (t) => {
  const file = tokensFile();
  const cluster = await startLocalCluster({
    nodeCount: 1,
    extraArgs: ['--client-tokens-file', file, '--text-protocol', 'on'],
  });
  t.teardown(async () => {
    await cluster.destroy();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });
  const text = await rawExchange(portOf(cluster.clientAddrs[0]!), [frame('METRICS')]);
  t.regex(splitFrames(text.data)[0]?.toString('utf8') ?? '', /^\{/);
  await eventually('the warning in the log', async () =>
    /"level":"warn".*text protocol is on/.test(cluster.nodes[0]!.logTail) ? true : undefined,
  );
  t.pass();
});
