/**
 * Wire compatibility with real Walrus: for each text command, the exact reply bytes a real
 * walrus-node process sends have the shape upstream's source gives them
 * (test/fixtures/walrus-upstream/text-replies.json): one frame with a u32 LE length, then `OK`,
 * `OK <payload>`, `EMPTY`, `ERR …`, or for STATE and METRICS the JSON object alone.
 */
import test from 'ava';
import { eventually } from '../../helpers/eventually.js';
import { type TestCluster, startLocalCluster } from '../../helpers/local-cluster.js';
import { frame, portOf, rawExchange, splitFrames } from '../../helpers/raw-socket.js';
import {
  metricsOursNullable,
  metricsTypeDifferences,
  shapeProblems,
  upstreamFixtures,
} from '../../helpers/walrus-upstream.js';

const fixtures = upstreamFixtures();
let cluster: TestCluster;
let port: number;

test.before(async () => {
  cluster = await startLocalCluster();
  port = portOf(cluster.clientAddrs[0]!);
});

test.after.always(async () => {
  await cluster?.destroy();
});

/** Sends one framed command on a fresh connection; returns the single reply frame's payload. */
async function reply(command: string): Promise<Buffer> {
  const { data } = await rawExchange(port, [frame(command)], { expectFrames: 1 });
  const frames = splitFrames(data);
  if (frames.length !== 1) throw new Error(`${command}: ${frames.length} frames`);
  if (data.length !== 4 + data.readUInt32LE(0)) throw new Error(`${command}: bytes beyond the frame`);
  return frames[0]!;
}

test.serial("each text command's reply bytes have the shape real Walrus sends", async (t) => {
  // The node registers its own addresses through Raft just after it starts: wait for that, so
  // that METRICS names them as upstream's membership does.
  await eventually('the node to know its own addresses', async () => {
    const m = JSON.parse((await reply('METRICS')).toString('utf8')) as {
      membership_config: { membership: { nodes: Record<string, { addr?: string }> } };
    };
    return m.membership_config.membership.nodes['1']?.addr;
  });
  const order = ['REGISTER', 'PUT', 'GET hit', 'GET EMPTY', 'error', 'STATE', 'METRICS'];
  t.deepEqual(Object.keys(fixtures.cases).sort(), [...order].sort(), 'every fixture is checked');
  for (const name of order) {
    const c = fixtures.cases[name]!;
    const bytes = await reply(c.command);
    if (c.reply !== undefined) {
      t.deepEqual(bytes, Buffer.from(c.reply, 'utf8'), `${name}: exact bytes`);
    } else if (c.replyPrefix !== undefined) {
      t.true(bytes.toString('utf8').startsWith(c.replyPrefix), `${name}: ${bytes.toString('utf8')}`);
    } else {
      t.is(bytes[0], '{'.charCodeAt(0), `${name}: the JSON object alone, no OK in front`);
      const parsed = JSON.parse(bytes.toString('utf8')) as unknown;
      const problems = shapeProblems(c.json, parsed, {
        nullable: c.nullable,
        ...(name === 'METRICS'
          ? { oursNullable: metricsOursNullable, differences: metricsTypeDifferences }
          : {}),
      });
      t.deepEqual(problems, [], `${name}: ${bytes.toString('utf8')}`);
    }
  }
});

test.serial(
  'replies other than STATE and METRICS never start with {, so a client can tell JSON',
  async (t) => {
    // A GET whose payload starts with { still has its OK in front.
    t.is((await reply('REGISTER braces')).toString(), 'OK');
    t.is((await reply('PUT braces {"a":1}')).toString(), 'OK');
    t.is((await reply('GET braces')).toString(), 'OK {"a":1}');
    t.regex((await reply('METRICS please')).toString(), /^ERR /);
  },
);
