/**
 * Routing state without a network: address parsing, leader hints, failover order and the bound on
 * cached topics.
 */
import test from 'ava';
import { LeaderCache } from '../../../node/client/leader-cache.js';
import { parseNodeAddress } from '../../../node/client/node-address.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';

test('node addresses: host:port, bracketed IPv6, and typed errors for the rest', (t) => {
  t.deepEqual(parseNodeAddress('127.0.0.1:9091'), { host: '127.0.0.1', port: 9091, key: '127.0.0.1:9091' });
  t.deepEqual(parseNodeAddress('node1:9091'), { host: 'node1', port: 9091, key: 'node1:9091' });
  t.deepEqual(parseNodeAddress('[::1]:9092'), { host: '::1', port: 9092, key: '[::1]:9092' });
  for (const bad of ['', 'node1', ':9091', 'node1:0', 'node1:70000', '::1:9091', 'a b:1', 'h:12x']) {
    const err = t.throws(() => parseNodeAddress(bad), { instanceOf: WalrusError });
    t.is(err?.code, ErrorCode.BAD_REQUEST);
  }
});

test('topics follow leader hints; other requests go to the preferred node', (t) => {
  const cache = new LeaderCache(['a:1', 'b:2', 'c:3']);
  t.is(cache.route('t').key, 'a:1');
  cache.learnLeader('t', 'c:3');
  t.is(cache.route('t').key, 'c:3');
  t.is(cache.route('u').key, 'a:1');
  t.is(cache.route(undefined).key, 'a:1');
  cache.forgetLeader('t');
  t.is(cache.route('t').key, 'a:1');
});

test('a failed node is skipped and topics cached on it are forgotten', (t) => {
  const cache = new LeaderCache(['a:1', 'b:2']);
  cache.learnLeader('t', 'b:2');
  cache.markFailed(parseNodeAddress('a:1'));
  t.is(cache.preferred().key, 'b:2');
  t.is(cache.route('t').key, 'b:2');
  cache.markFailed(parseNodeAddress('b:2'));
  t.is(cache.preferred().key, 'a:1', 'wraps around');
  t.is(cache.route('t').key, 'a:1');
  t.is(cache.cachedTopicCount(), 0);
});

test('the topic cache is bounded; the least recently used topic goes first', (t) => {
  const cache = new LeaderCache(['a:1'], 3);
  cache.learnLeader('t1', 'x:1');
  cache.learnLeader('t2', 'x:2');
  cache.learnLeader('t3', 'x:3');
  cache.route('t1'); // t1 is now the most recent
  cache.learnLeader('t4', 'x:4');
  t.is(cache.cachedTopicCount(), 3);
  t.is(cache.route('t2').key, 'a:1', 't2 was evicted');
  t.is(cache.route('t1').key, 'x:1');
  t.is(cache.route('t4').key, 'x:4');
});
