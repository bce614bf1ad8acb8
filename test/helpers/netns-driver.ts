/**
 * The client side of a NetnsCluster (netns-cluster.ts), run inside its client namespace: it does
 * what it is asked over IPC against node addresses, and answers over IPC. The test process outside
 * the namespaces cannot reach the nodes; this process can, over the bridge.
 * - `text`: Walrus text commands on one connection;
 * - `appends`: one writer appending single records in order through a leader-aware WalrusClient,
 *   reporting each outcome (an error after sending leaves the outcome unknown);
 * - `readAll`: every record of a topic from its start.
 */
import { WalrusClient } from '../../node/client/walrus-client.js';
import { textCommands } from './node-text.js';

type Ask =
  | {
      readonly id: number;
      readonly kind: 'text';
      readonly addr: string;
      readonly commands: readonly string[];
      readonly timeoutMs: number;
    }
  | {
      readonly id: number;
      readonly kind: 'appends';
      readonly nodes: readonly string[];
      readonly topic: string;
      readonly values: readonly string[];
      readonly timeoutMs: number;
      readonly untilMs: number;
    }
  | {
      readonly id: number;
      readonly kind: 'readAll';
      readonly nodes: readonly string[];
      readonly topic: string;
    };

function codeOf(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e.code ?? e.message ?? String(error);
}

async function appends(ask: Extract<Ask, { kind: 'appends' }>) {
  const client = new WalrusClient({
    nodes: [...ask.nodes],
    requestTimeoutMs: ask.timeoutMs,
    retryCountMax: 3,
  });
  const results: { value: string; offset?: number; error?: string }[] = [];
  try {
    for (const value of ask.values) {
      if (Date.now() > ask.untilMs) break;
      try {
        const r = await client.append(ask.topic, [{ value: Buffer.from(value) }]);
        results.push({ value, offset: r.firstOffset });
      } catch (error) {
        results.push({ value, error: codeOf(error) });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } finally {
    await client.close();
  }
  return results;
}

async function readAll(ask: Extract<Ask, { kind: 'readAll' }>) {
  const client = new WalrusClient({ nodes: [...ask.nodes], retryCountMax: 5 });
  const records: { offset: number; value: string }[] = [];
  try {
    const info = await client.describeTopic(ask.topic);
    for (let offset = info.startOffset; offset < info.endOffset; ) {
      const page = await client.read(ask.topic, offset, { recordCountMax: 1000, byteCountMax: 1 << 20 });
      if (page.records.length === 0) break;
      for (const r of page.records)
        records.push({ offset: r.offset, value: Buffer.from(r.value).toString('utf8') });
      offset = page.nextOffset;
    }
    return { records, endOffset: info.endOffset };
  } finally {
    await client.close();
  }
}

process.on('message', (ask: Ask) => {
  const work =
    ask.kind === 'text'
      ? textCommands(ask.addr, ask.commands, ask.timeoutMs).then((replies) => ({ replies }))
      : ask.kind === 'appends'
        ? appends(ask).then((results) => ({ results }))
        : readAll(ask);
  work.then(
    (answer) => process.send?.({ id: ask.id, ...answer }),
    (error: unknown) => process.send?.({ id: ask.id, error: codeOf(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
