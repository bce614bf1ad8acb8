/**
 * Prints, as JSON, every record of a topic read through ONE node's client port (the VM test runs
 * it inside the test's network namespace, once per node): `node read-node.js <host:port> <topic>`.
 */
import { WalrusClient } from '../../node/client/walrus-client.js';

const [addr, topic] = process.argv.slice(2);
const client = new WalrusClient({ nodes: [addr!], retryCountMax: 3 });
try {
  const info = await client.describeTopic(topic!);
  const page = await client.read(topic!, info.startOffset, { recordCountMax: 1000, byteCountMax: 1 << 20 });
  const records = page.records.map((r) => ({
    offset: r.offset,
    value: Buffer.from(r.value).toString('utf8'),
  }));
  console.log(JSON.stringify({ endOffset: info.endOffset, records }));
} finally {
  await client.close();
}
