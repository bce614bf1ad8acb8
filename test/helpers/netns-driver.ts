/**
 * The client side of a NetnsCluster (netns-cluster.ts), run inside its client namespace: it sends
 * Walrus text commands to node addresses it is given over IPC and answers over IPC. The test
 * process outside the namespaces cannot reach the nodes; this process can, over the bridge.
 */
import { textCommands } from './node-text.js';

interface Ask {
  readonly id: number;
  readonly addr: string;
  readonly commands: readonly string[];
  readonly timeoutMs: number;
}

process.on('message', (ask: Ask) => {
  textCommands(ask.addr, ask.commands, ask.timeoutMs).then(
    (replies) => process.send?.({ id: ask.id, replies }),
    (error: unknown) => {
      const e = error as { code?: string; message?: string };
      process.send?.({ id: ask.id, error: e.code ?? e.message ?? String(error) });
    },
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
