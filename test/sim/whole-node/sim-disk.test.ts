/**
 * The simulated disk's crash model (what survives a power loss and what does not), and
 * mkdirDurably, whose absence the whole-node simulator found: walrus-node made its node directory
 * without fsyncing the data directory, so a power loss soon after the first start could take the
 * whole node directory back, and the node came back as a brand-new one.
 */
import test from 'ava';
import { Prng } from '../../../node/raft/index.js';
import { mkdirDurably } from '../../../node/storage-io/index.js';
import { SimDisk, SimFileIo } from './sim-disk.js';
import { SimProcess, SimScheduler, SimWorld } from './sim-world.js';

function setup(seed = 1): { disk: SimDisk; io: () => SimFileIo } {
  const world = new SimWorld();
  const disk = new SimDisk('test', new Prng(seed));
  disk.provision('/data');
  const io = (): SimFileIo => {
    const p = new SimProcess(1, 1);
    return new SimFileIo(disk, p, new SimScheduler(world, p, 0));
  };
  return { disk, io };
}

function writeFile(io: SimFileIo, file: string, text: string, sync: boolean): void {
  const fd = io.open(file, 'w+');
  io.write(fd, Buffer.from(text), 0, text.length, 0);
  if (sync) io.fdatasync(fd);
  io.close(fd);
}

function readFile(io: SimFileIo, file: string): string {
  const fd = io.open(file, 'r');
  const buf = Buffer.alloc(io.sizeOf(fd));
  io.read(fd, buf, 0, buf.length, 0);
  io.close(fd);
  return buf.toString();
}

test('synced data in a durable directory entry survives a crash', (t) => {
  const { disk, io } = setup();
  const a = io();
  mkdirDurably(a, '/data/node_1/raft_meta');
  writeFile(a, '/data/node_1/raft_meta/f', 'hello', true);
  a.fsyncDir('/data/node_1/raft_meta');
  disk.crash();
  t.is(readFile(io(), '/data/node_1/raft_meta/f'), 'hello');
});

test('a directory made without fsyncing its parent may vanish with everything in it', (t) => {
  // With several seeds some crash keeps none of the unsynced directory operations.
  let lost = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const { disk, io } = setup(seed);
    const a = io();
    a.mkdir('/data/node_1/raft_meta');
    writeFile(a, '/data/node_1/raft_meta/f', 'hello', true);
    a.fsyncDir('/data/node_1/raft_meta');
    a.fsyncDir('/data/node_1');
    disk.crash();
    if (!io().exists('/data/node_1')) lost++;
  }
  t.true(lost > 0, 'an unsynced mkdir of the node directory can be lost');
});

test('mkdirDurably makes every new level durable', (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const { disk, io } = setup(seed);
    mkdirDurably(io(), '/data/node_1/raft_meta');
    disk.crash();
    t.true(io().exists('/data/node_1/raft_meta'), `seed ${seed}`);
  }
});

test('unsynced writes are lost or torn, never invented', (t) => {
  for (let seed = 1; seed <= 30; seed++) {
    const { disk, io } = setup(seed);
    const a = io();
    writeFile(a, '/data/f', 'durable-', true);
    a.fsyncDir('/data');
    const fd = a.open('/data/f', 'r+');
    a.write(fd, Buffer.from('volatile'), 0, 8, 8);
    disk.crash();
    const text = readFile(io(), '/data/f');
    t.true(text.startsWith('durable-'), `seed ${seed}: ${text}`);
    t.true('durable-volatile'.startsWith(text), `seed ${seed}: ${text}`);
  }
});

test('after a failed fdatasync the written data is never made durable (fsyncgate)', (t) => {
  const { disk, io } = setup();
  const a = io();
  writeFile(a, '/data/f', 'one', true);
  a.fsyncDir('/data');
  const fd = a.open('/data/f', 'r+');
  a.write(fd, Buffer.from('two'), 0, 3, 0);
  disk.faults = { writeFullRate: 0, writeErrorRate: 0, syncErrorRate: 1, crashPointRate: 0 };
  t.throws(() => a.fdatasync(fd), { message: /EIO/ });
  disk.faults = { writeFullRate: 0, writeErrorRate: 0, syncErrorRate: 0, crashPointRate: 0 };
  a.fdatasync(fd);
  t.is(readFile(a, '/data/f'), 'two', 'the page cache still shows the write');
  disk.crash();
  t.is(readFile(io(), '/data/f'), 'one');
});

test('a rename is durable only after fsyncDir, and then atomically', (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const { disk, io } = setup(seed);
    const a = io();
    writeFile(a, '/data/f', 'old', true);
    a.fsyncDir('/data');
    writeFile(a, '/data/f.tmp', 'new', true);
    a.rename('/data/f.tmp', '/data/f');
    disk.crash();
    const text = readFile(io(), '/data/f');
    t.true(text === 'old' || text === 'new', `seed ${seed}: ${text}`);
  }
});
