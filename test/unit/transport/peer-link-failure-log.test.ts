/**
 * A peer that is down: the link's failed attempts (one per backoff, real sockets to a closed port)
 * are logged at warn, at most once per failureLogIntervalMs, each line counting the attempts it
 * stands for (`suppressedCount`), so a down peer does not flood the log (issue 11).
 */
import net from 'node:net';
import test from 'ava';
import type { Logger } from '../../../node/log.js';
import { PeerLink } from '../../../node/transport/peer-link.js';
import { waitFor } from './helpers.js';

interface Line {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

function recordingLogger(lines: Line[]): Logger {
  const at =
    (level: string) =>
    (fields: object, msg: string): void => {
      lines.push({ level, msg, fields: fields as Record<string, unknown> });
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('repeated attempts to a down peer are logged at warn once per interval, with the suppressed count', async (t) => {
  const lines: Line[] = [];
  const port = await closedPort();
  const link = new PeerLink({
    selfNodeId: 1,
    addr: `127.0.0.1:${port}`,
    peerNodeId: 2,
    clusterSecret: null,
    queueCountMax: 16,
    queueBytesMax: 64 * 1024,
    connectTimeoutMs: 2_000,
    requestTimeoutMs: 2_000,
    reconnectBackoffMsMin: 5,
    reconnectBackoffMsMax: 20,
    failureLogIntervalMs: 500,
    logger: recordingLogger(lines),
  });
  t.teardown(() => link.close());
  const failures = (): Line[] => lines.filter((l) => l.msg.startsWith('peer link attempt failed'));
  await waitFor(() => failures().length >= 3, 'three failure lines', 30_000);
  await link.close();

  const logged = failures();
  for (const line of logged) {
    t.is(line.level, 'warn', 'a failed attempt is a warning');
    t.is(line.msg, 'peer link attempt failed', 'a stable message; the reason is a field');
    t.is(line.fields['addr'], `127.0.0.1:${port}`);
    t.is(line.fields['peerNodeId'], 2);
    t.is(typeof line.fields['err'], 'string');
  }
  t.is(logged[0]!.fields['suppressedCount'], 0, 'the first failure is logged at once');
  // Every failed attempt is either a line or counted in the next line's suppressedCount.
  let attempts = 0;
  for (const line of logged) {
    attempts += 1 + (line.fields['suppressedCount'] as number);
    t.is(line.fields['failureCount'], attempts, 'failureCount = lines so far + suppressed so far');
  }
  const suppressedTotal = logged.reduce((sum, l) => sum + (l.fields['suppressedCount'] as number), 0);
  t.true(
    suppressedTotal > logged.length,
    `attempts every 5-20 ms, lines every 500 ms: most attempts are suppressed (${suppressedTotal} suppressed, ${logged.length} lines)`,
  );
});
