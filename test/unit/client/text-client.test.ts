/**
 * The text-protocol client and the seed session (seed 004 quick start) against an in-memory node.
 */
import test from 'ava';
import { sendTextCommand, TextClient } from '../../../node/client/text-client.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { FakeNode } from './fake-node.js';

test('the seed session: REGISTER, PUT, GET, STATE, METRICS', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const c = new TextClient(node.addr);
  t.teardown(() => c.close());
  t.is(await c.send('REGISTER logs'), 'OK');
  t.is(await c.send('PUT logs hello from distributed cluster'), 'OK');
  t.is(await c.send('GET logs'), 'OK hello from distributed cluster');
  t.is(await c.send('GET logs'), 'EMPTY');
  t.like(JSON.parse(await c.send('STATE logs')), {
    topic: 'logs',
    current_segment: 1,
    leader_node: 1,
  });
  t.like(JSON.parse(await c.send('metrics')), { id: 1 });
  t.is(await c.send('GET nope'), "ERR TOPIC_NOT_FOUND topic 'nope' does not exist");
  t.regex(await c.send('FETCH logs'), /^ERR UNKNOWN_COMMAND /);
  await c.close();
  await node.stop();
});

test('pipelined text commands are answered in order', async (t) => {
  const node = await new FakeNode(1).start();
  t.teardown(() => node.stop());
  const c = new TextClient(node.addr);
  t.teardown(() => c.close());
  await c.send('REGISTER t');
  const puts = Array.from({ length: 20 }, (_, i) => c.send(`PUT t ${i}`));
  t.deepEqual(await Promise.all(puts), Array(20).fill('OK'));
  const gets = Array.from({ length: 21 }, () => c.send('GET t'));
  t.deepEqual(await Promise.all(gets), [...Array.from({ length: 20 }, (_, i) => `OK ${i}`), 'EMPTY']);
  await c.close();
  await node.stop();
});

test('sendTextCommand: one command on a fresh connection; failures are typed', async (t) => {
  const node = await new FakeNode(3).start();
  t.teardown(() => node.stop());
  t.regex(await sendTextCommand(node.addr, 'METRICS'), /^\{"id":3/);
  node.hook = () => undefined;
  await node.stop();
  const err = await t.throwsAsync(sendTextCommand(node.addr, 'METRICS', { timeoutMs: 2_000 }));
  t.true(err instanceof WalrusError && err.code === ErrorCode.UNAVAILABLE);
  t.throws(() => new TextClient('nonsense'), { instanceOf: WalrusError });
});
