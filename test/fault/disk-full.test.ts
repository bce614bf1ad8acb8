/**
 * A full disk on a real walrus-node process whose data directory is a small tmpfs (root only; the
 * campaign's cluster helper mounts and removes it): appends answer DISK_FULL on every path (the
 * text protocol's PUT says `ERR DISK_FULL`), the node keeps a reserve and reports free space in
 * METRICS, a node killed -9 on a completely full disk restarts and serves every acknowledged
 * record, and appends work again as soon as space is freed, without a restart. Prints the time to
 * serve an append again after space is freed (the figure of issue 12).
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { TextClient } from '../../node/client/text-client.js';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { CampaignCluster, capabilities } from '../helpers/campaign-cluster.js';
import { eventually } from '../helpers/eventually.js';
import { jsonReply } from '../helpers/node-text.js';

const tmpfsBytes = 24 * 1024 * 1024;
const reserveBytes = 2 * 1024 * 1024;
const valueBytes = 48 * 1024;
/** More PUTs than the tmpfs can take: the loop that fills it is bounded by this. */
const putCountMax = Math.ceil(tmpfsBytes / valueBytes) * 2;
const refusalsInARow = 5;
/** Generous: the node reads statfs every 100 ms; this is a loaded 2-core machine. */
const appendsAgainTimeoutMs = 15_000;

interface DiskMetrics {
  disk_free_bytes: number;
  disk_reserve_bytes: number;
  disk_full: boolean;
}

function value(i: number): string {
  return `${String(i).padStart(8, '0')}${'x'.repeat(valueBytes - 8)}`;
}

async function withNode(t: ExecutionContext, run: (c: CampaignCluster, text: TextClient) => Promise<void>) {
  const cluster = await CampaignCluster.start({
    mode: 'loopback',
    nodeCount: 1,
    tmpfsNode: 0,
    tmpfsBytes,
    env: {
      WALRUS_DISK_RESERVE_BYTES: String(reserveBytes),
      // Small segments: filling the disk crosses rollovers and new segments.
      WALRUS_MAX_SEGMENT_ENTRIES: '40',
    },
  });
  let text: TextClient | null = null;
  try {
    text = await connectText(cluster);
    await run(cluster, text);
  } catch (error) {
    t.log(`--- node 1 ---\n${cluster.nodes[0]!.logTail.slice(-4000)}`);
    throw error;
  } finally {
    await text?.close();
    await cluster.destroy();
  }
}

async function connectText(cluster: CampaignCluster): Promise<TextClient> {
  return eventually('the node answers METRICS', async () => {
    const c = new TextClient(cluster.clientAddrs[0]!, { timeoutMs: 10_000 });
    try {
      if ((await c.send('METRICS')).startsWith('{')) return c;
    } catch {
      // Not up yet.
    }
    await c.close();
    return undefined;
  });
}

async function storage(text: TextClient): Promise<DiskMetrics & Record<string, unknown>> {
  const m = jsonReply<{ storage: DiskMetrics & Record<string, unknown> }>(await text.send('METRICS'));
  if (m === null) throw new Error('METRICS did not answer JSON');
  return m.storage;
}

/**
 * PUTs until `refusalsInARow` are refused one after another (a refusal gives preallocated space
 * back, which may take a few more); returns how many were acknowledged (record i holds value(i))
 * and the last refusal.
 */
async function fill(
  text: TextClient,
  topic: string,
  from: number,
): Promise<{ acked: number; refusal: string }> {
  let acked = 0;
  let inARow = 0;
  for (let attempt = 0; attempt < putCountMax; attempt++) {
    const reply = await text.send(`PUT ${topic} ${value(from + acked)}`);
    if (reply === 'OK') {
      acked += 1;
      inARow = 0;
    } else if (++inARow >= refusalsInARow) {
      return { acked, refusal: reply };
    }
  }
  throw new Error(`${putCountMax} PUTs of ${valueBytes} bytes fitted on a ${tmpfsBytes}-byte tmpfs`);
}

/**
 * Sends `command` back to back (each waits for its reply) until one is answered OK; returns the ms
 * since `sinceMs`. Bounded by appendsAgainTimeoutMs: a freed disk must serve again long before.
 */
async function untilPutOk(text: TextClient, command: string, sinceMs: number): Promise<number> {
  let last = '';
  while (Date.now() - sinceMs < appendsAgainTimeoutMs) {
    last = await text.send(command);
    if (last === 'OK') return Date.now() - sinceMs;
  }
  throw new Error(
    `no PUT was taken within ${appendsAgainTimeoutMs} ms of freeing space: ${last.slice(0, 200)}`,
  );
}

/**
 * A tmpfs needs root: elsewhere each test says it did not run (as the fault campaign does), and the
 * WAL and topic unit tests cover the same logic through the fault-injecting FileIo.
 */
function rootTest(title: string, run: (t: ExecutionContext) => Promise<void>): void {
  test.serial(title, async (t) => {
    if (!capabilities().root) {
      t.log('not run on this machine: mounting a tmpfs needs root');
      t.pass();
      return;
    }
    await run(t);
  });
}

function writeBallast(cluster: CampaignCluster, bytes: number): string {
  const file = path.join(cluster.nodes[0]!.dataRoot, 'freeable');
  fs.writeFileSync(file, Buffer.alloc(bytes, 0x5a));
  return file;
}

rootTest(
  'appends answer DISK_FULL at the reserve on every path, METRICS says so, and 3 MiB freed take appends at once',
  async (t) => {
    await withNode(t, async (cluster, text) => {
      t.is(await text.send('REGISTER df'), 'OK');
      const before = await storage(text);
      t.is(before.disk_reserve_bytes, reserveBytes);
      t.false(before.disk_full);
      t.true(before.disk_free_bytes > reserveBytes && before.disk_free_bytes <= tmpfsBytes);
      // 3 MiB to give back later (the figure: preallocation took all of them).
      const freeable = writeBallast(cluster, 3 * 1024 * 1024);
      const { acked, refusal } = await fill(text, 'df', 0);
      t.true(acked > 40, `${acked} PUTs acknowledged (more than one segment)`);
      t.regex(refusal, /^ERR DISK_FULL /);
      // Space the node gave back or freed meanwhile (preallocation, seals) is taken too, so that the
      // file system holds the reserve and 16 KiB more: no PUT nor new segment fits from here on.
      const free = fs.statfsSync(cluster.nodes[0]!.dataRoot);
      const extra = free.bavail * free.bsize - reserveBytes - 16 * 1024;
      if (extra > 0)
        fs.writeFileSync(path.join(cluster.nodes[0]!.dataRoot, 'top-up'), Buffer.alloc(extra, 0x5a));
      // Refused before the file system is full: the reserve is still there.
      const full = await storage(text);
      t.true(full.disk_full);
      t.true(full.disk_free_bytes > 0, 'the reserve keeps the file system from filling up');
      // Every path answers DISK_FULL: a new topic's first segment, the full topic again.
      t.is(await text.send('REGISTER df5'), 'OK');
      t.regex(await text.send(`PUT df5 ${value(0)}`), /^ERR DISK_FULL /);
      t.regex(await text.send(`PUT df ${value(acked)}`), /^ERR DISK_FULL /);
      // No log flood: 100 refused PUTs, at most one warning line about them.
      const node = cluster.nodes[0]!;
      node.logTail = '';
      for (let i = 0; i < 100; i++) t.regex(await text.send(`PUT df ${value(acked)}`), /^ERR DISK_FULL /);
      const warnings = node.logTail.split('\n').filter((l) => l.includes('"level":"warn"'));
      t.true(
        warnings.length <= 1,
        `${warnings.length} warning lines for 100 refusals:\n${warnings.join('\n')}`,
      );
      // Free 3 MiB: appends work again without a restart, and soon.
      const freedAtMs = Date.now();
      fs.rmSync(freeable);
      const serveAgainMs = await untilPutOk(text, `PUT df5 ${value(0)}`, freedAtMs);
      t.is(await text.send(`PUT df ${value(acked)}`), 'OK');
      t.false((await storage(text)).disk_full);
      t.log(JSON.stringify({ diskFullServeAgainMs: serveAgainMs }));
      // Every acknowledged record reads back.
      const client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 10_000 });
      try {
        for (let i = 0; i <= acked; i++) {
          const { records } = await client.read('df', i, { recordCountMax: 1 });
          t.is(Buffer.from(records[0]!.value).toString('utf8'), value(i), `record ${i}`);
        }
      } finally {
        await client.close();
      }
    });
  },
);

rootTest(
  'a node killed -9 on a completely full disk restarts and serves every acknowledged record',
  async (t) => {
    await withNode(t, async (cluster, text) => {
      t.is(await text.send('REGISTER full'), 'OK');
      // Records past the active segment's last index checkpoint: the restart scans them and
      // checkpoints the index (what exited with ENOSPC at Segment.writeCheckpoint).
      const acked = 20;
      for (let i = 0; i < acked; i++) t.is(await text.send(`PUT full ${value(i)}`), 'OK');
      // Then the disk is filled to the last byte: nothing is left for a checkpoint, an index or a seal.
      cluster.fillDisk(0);
      t.is(fs.statfsSync(cluster.nodes[0]!.dataRoot).bavail, 0);
      await text.close();
      await cluster.kill(0, 'SIGKILL');
      // A node with Raft state ignores --join: its own address stands for "no one to join".
      await cluster.startNode(0, cluster.nodes[0]!.raftAddr);
      const again = await connectText(cluster);
      const client = new WalrusClient({
        nodes: cluster.clientAddrs,
        requestTimeoutMs: 10_000,
        retryCountMax: 20,
      });
      try {
        for (let i = 0; i < acked; i++) {
          const { records } = await client.read('full', i, { recordCountMax: 1 });
          t.is(Buffer.from(records[0]!.value).toString('utf8'), value(i), `record ${i}`);
        }
        t.regex(await again.send(`PUT full ${value(acked)}`), /^ERR DISK_FULL /);
        t.true((await storage(again)).disk_full);
        // Space back: appends again, no restart.
        const freedAtMs = Date.now();
        cluster.freeDisk(0);
        const ms = await untilPutOk(again, `PUT full ${value(acked)}`, freedAtMs);
        t.log(JSON.stringify({ diskFullRestartServeAgainMs: ms }));
      } finally {
        await client.close();
        await again.close();
      }
    });
  },
);
