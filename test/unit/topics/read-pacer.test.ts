/**
 * The ReadPacer: long reads yield to the event loop between steps once a slice of work is spent
 * (a timer fires while they run), at most `readCountMax` run at once, and an aborted signal drops
 * a waiting read or step without running it.
 */
import test from 'ava';
import { realScheduler } from '../../../node/scheduler.js';
import { ReadPacer, readPacerLimits } from '../../../node/topics/read-pacer.js';

function busyMs(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

test('steps of many reads yield: a timer set before them fires long before they finish', async (t) => {
  const pacer = new ReadPacer(realScheduler);
  const order: string[] = [];
  const timer = new Promise<void>((resolve) =>
    setTimeout(() => {
      order.push('timer');
      resolve();
    }, 0),
  );
  const reads = Array.from({ length: 4 }, (_, r) =>
    pacer.withSlot(undefined, async () => {
      for (let i = 0; i < 25; i++) await pacer.step(undefined, () => busyMs(1));
      order.push(`read${r}`);
    }),
  );
  await Promise.all([...reads, timer]);
  // 100 ms of work in 4 ms slices: the timer's turn comes after the first slice.
  t.is(order[0], 'timer', order.join(','));
});

test('at most readCountMax reads run at once; an aborted waiting read never runs', async (t) => {
  const pacer = new ReadPacer(realScheduler, { ...readPacerLimits, readCountMax: 2 });
  let running = 0;
  let peak = 0;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const read = () =>
    pacer.withSlot(undefined, async () => {
      running += 1;
      peak = Math.max(peak, running);
      await gate;
      running -= 1;
    });
  const first = [read(), read(), read()];
  const controller = new AbortController();
  let ranAborted = false;
  const aborted = pacer.withSlot(controller.signal, async () => {
    ranAborted = true;
  });
  await new Promise((r) => setTimeout(r, 20));
  t.is(pacer.runningCount, 2);
  t.is(pacer.waitingCount, 2);
  controller.abort();
  const error = await t.throwsAsync(aborted);
  t.regex(error?.message ?? '', /cancelled/);
  release();
  await Promise.all(first);
  t.is(peak, 2);
  t.false(ranAborted);
});
