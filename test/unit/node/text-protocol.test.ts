/**
 * The Walrus text protocol against a real walrus-node process over real sockets: the seed's
 * quick-start exchange, the health check, and every kind of bad input, after which the node
 * still serves other connections.
 */
import test from 'ava';
import { TextClient } from '../../../node/client/text-client.js';
import { type TestCluster, startLocalCluster } from '../../helpers/local-cluster.js';
import { frame, portOf, rawExchange, splitFrames } from '../../helpers/raw-socket.js';

let cluster: TestCluster;
let addr: string;
let port: number;

test.before(async () => {
  cluster = await startLocalCluster({
    env: { WALRUS_MAX_SEGMENT_ENTRIES: '5', WALRUS_MONITOR_CHECK_MS: '50' },
  });
  addr = cluster.clientAddrs[0]!;
  port = portOf(addr);
});

test.after.always(async () => {
  await cluster?.destroy();
});

async function send(...commands: (string | Uint8Array)[]): Promise<string[]> {
  const client = new TextClient(addr, { timeoutMs: 5000 });
  try {
    const replies: string[] = [];
    for (const c of commands) replies.push(await client.send(c));
    return replies;
  } finally {
    await client.close();
  }
}

async function assertStillServing(t: import('ava').ExecutionContext): Promise<void> {
  const [reply] = await send('METRICS');
  t.true(reply?.startsWith('{'), `node stopped serving: ${reply}`);
  t.is(cluster.nodes[0]!.process?.exitCode, null, 'the node process is alive');
}

test.serial('the seed quick-start exchange: REGISTER, PUT, GET, STATE', async (t) => {
  const replies = await send(
    'REGISTER logs',
    'PUT logs hello from distributed cluster',
    'GET logs',
    'GET logs',
    'STATE logs',
  );
  t.deepEqual(replies.slice(0, 4), ['OK', 'OK', 'OK hello from distributed cluster', 'EMPTY']);
  const state = JSON.parse(replies[4]!) as Record<string, unknown>;
  t.like(state, {
    topic: 'logs',
    current_segment: 1,
    leader_node: 1,
    sealed_segments: {},
    segment_leaders: { '1': 1 },
  });
});

test.serial('REGISTER is idempotent and keywords are case-insensitive', async (t) => {
  t.deepEqual(await send('register idem', 'REGISTER idem', 'put idem x', 'get idem'), [
    'OK',
    'OK',
    'OK',
    'OK x',
  ]);
});

test.serial('METRICS returns seed 002 fields with real values', async (t) => {
  const [reply] = await send('METRICS');
  const m = JSON.parse(reply!) as Record<string, unknown>;
  for (const key of [
    'id',
    'state',
    'current_term',
    'vote',
    'last_log_index',
    'last_applied',
    'current_leader',
    'membership_config',
    'snapshot',
    'replication',
  ]) {
    t.true(key in m, `METRICS lacks ${key}`);
  }
  t.is(m['id'], 1);
  t.is(m['state'], 'Leader');
  t.is(m['current_leader'], 1);
  t.like(m['membership_config'], { nodes: [1], voters: [1], learners: [], membership: { configs: [[1]] } });
  t.true((m['last_applied'] as number) > 0);
});

test.serial("the seed's nc health check gets a framed reply", async (t) => {
  const { data } = await rawExchange(port, [Buffer.from('\x07\x00\x00\x00METRICS', 'latin1')], {
    expectFrames: 1,
  });
  const frames = splitFrames(data);
  t.is(frames.length, 1);
  t.is(data.readUInt32LE(0), frames[0]!.length);
  t.true(frames[0]!.toString('utf8').startsWith('{"running_state":{"Ok":null},"id":1,'));
});

test.serial(
  'rollover at WALRUS_MAX_SEGMENT_ENTRIES: GET crosses segments with no gap and no duplicate',
  async (t) => {
    const count = 23;
    const puts = Array.from({ length: count }, (_, i) => `PUT roll r${i}`);
    const replies = await send('REGISTER roll', ...puts);
    t.true(replies.every((r) => r === 'OK'));
    const gets = await send(...Array.from({ length: count + 1 }, () => 'GET roll'));
    t.deepEqual(gets, [...Array.from({ length: count }, (_, i) => `OK r${i}`), 'EMPTY']);
    const state = JSON.parse((await send('STATE roll'))[0]!) as {
      current_segment: number;
      last_sealed_entry_offset: number;
      sealed_segments: Record<string, number>;
    };
    t.true(state.current_segment >= 5, `expected ≥ 5 segments, got ${state.current_segment}`);
    t.deepEqual(
      Object.values(state.sealed_segments),
      Array.from({ length: state.current_segment - 1 }, () => 5),
    );
    // Walrus's cumulative count of entries in sealed segments: where the active segment starts.
    t.is(state.last_sealed_entry_offset, 5 * (state.current_segment - 1));
  },
);

const badTopics = ['../x', '/etc', 'a/b', '.', '..', 'a'.repeat(201), 'ünïcode', 'x\\y'];
for (const topic of badTopics) {
  test.serial(`bad topic name '${topic.slice(0, 20)}' → ERR INVALID_TOPIC_NAME`, async (t) => {
    for (const cmd of ['REGISTER', 'GET', 'STATE']) {
      const [reply] = await send(`${cmd} ${topic}`);
      t.regex(reply!, /^ERR INVALID_TOPIC_NAME /);
    }
    const [put] = await send(`PUT ${topic} payload`);
    t.regex(put!, /^ERR INVALID_TOPIC_NAME /);
  });
}

test.serial('unknown commands, missing arguments, invalid UTF-8, unknown topics', async (t) => {
  const replies = await send(
    'FROB logs',
    'REGISTER',
    'PUT',
    'PUT logs',
    'GET',
    'STATE',
    Buffer.from([0x50, 0x55, 0x54, 0x20, 0xff, 0xfe]),
    'GET nosuchtopic',
    'PUT nosuchtopic x',
  );
  t.regex(replies[0]!, /^ERR UNKNOWN_COMMAND /);
  for (const r of replies.slice(1, 6)) t.regex(r, /^ERR BAD_REQUEST /);
  t.regex(replies[6]!, /^ERR (BAD_REQUEST|INVALID_TOPIC_NAME) /);
  t.regex(replies[7]!, /^ERR TOPIC_NOT_FOUND /);
  t.regex(replies[8]!, /^ERR TOPIC_NOT_FOUND /);
  await assertStillServing(t);
});

test.serial('a zero-length frame gets ERR and the connection is closed', async (t) => {
  const { data, closed } = await rawExchange(port, [Buffer.from([0, 0, 0, 0])]);
  t.true(closed);
  t.regex(splitFrames(data)[0]?.toString() ?? '', /^ERR BAD_REQUEST /);
  await assertStillServing(t);
});

test.serial('a 2 GiB length prefix gets ERR FRAME_TOO_LARGE without buffering, and a close', async (t) => {
  const header = Buffer.alloc(4);
  header.writeUInt32LE(0x80000000, 0);
  const { data, closed } = await rawExchange(port, [header, Buffer.alloc(64 * 1024, 0x41)]);
  t.true(closed);
  t.regex(splitFrames(data)[0]?.toString() ?? '', /^ERR FRAME_TOO_LARGE /);
  await assertStillServing(t);
});

test.serial('a frame just over the frame limit is refused', async (t) => {
  const header = Buffer.alloc(4);
  header.writeUInt32LE(4 * 1024 * 1024 + 64 * 1024 + 1, 0);
  const { data, closed } = await rawExchange(port, [header]);
  t.true(closed);
  t.regex(splitFrames(data)[0]?.toString() ?? '', /^ERR FRAME_TOO_LARGE /);
});

test.serial('a PUT over the record size limit is refused and writes nothing', async (t) => {
  await send('REGISTER big');
  const [reply] = await send(Buffer.concat([Buffer.from('PUT big '), Buffer.alloc(1024 * 1024 + 1, 0x61)]));
  t.regex(reply!, /^ERR (RECORD_TOO_LARGE|FRAME_TOO_LARGE|BAD_REQUEST) /);
  t.deepEqual(await send('GET big'), ['EMPTY']);
});

test.serial('a truncated frame followed by a close does not disturb the node', async (t) => {
  const partial = frame('PUT logs this frame is cut').subarray(0, 12);
  const { data } = await rawExchange(port, [partial], { endAfterWrite: true });
  t.is(data.length, 0, 'no reply to half a frame');
  await assertStillServing(t);
});

test.serial(
  'several frames in one write and one frame split over many writes are both answered',
  async (t) => {
    const many = Buffer.concat([
      frame('REGISTER split'),
      frame('PUT split a'),
      frame('PUT split b'),
      frame('GET split'),
    ]);
    const one = await rawExchange(port, [many], { expectFrames: 4 });
    t.deepEqual(splitFrames(one.data).map(String), ['OK', 'OK', 'OK', 'OK a']);
    const bytes = frame('GET split');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const split = await rawExchange(port, chunks, { expectFrames: 1 });
    t.deepEqual(splitFrames(split.data).map(String), ['OK b']);
  },
);

test.serial('garbage binary frames get a typed error and the node keeps serving', async (t) => {
  const garbage = [
    Buffer.from([0xb1]),
    Buffer.from([0xb1, 0x01, 0x10, 0x00, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0xb1, 0x09, 0x99, 0x00, 2, 0, 0, 0]),
    Buffer.from([0xb1, 0x01, 0x7f, 0x00, 3, 0, 0, 0, 1, 2, 3]),
  ];
  for (const g of garbage) {
    const { data } = await rawExchange(port, [frame(g)], { quietMs: 300 });
    const reply = splitFrames(data)[0];
    t.truthy(reply, `no reply to garbage ${g.toString('hex')}`);
    const text = reply!.toString('latin1');
    t.true(reply![0] === 0xb1 || text.startsWith('ERR '), `unexpected reply ${text}`);
  }
  await assertStillServing(t);
});
