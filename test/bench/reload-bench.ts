/**
 * `npm run bench -- reload`: how long a SIGHUP reload holds the node's event loop. The reload is
 * synchronous on purpose (all or nothing in one step: node/bin/node-security.ts), so its cost is
 * a pause of every connection: this measures it with the largest token file the node takes
 * (tokenCountMax tokens, each hashed) and a certificate, key and CA checked and made into three
 * secure contexts. Real files on disk, real openssl certificates; in process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadNodeSecurity } from '../../node/bin/node-security.js';
import { parseNodeConfig } from '../../node/config/node-config.js';
import { tokenCountMax } from '../../node/protocol/access-tokens.js';
import { makeTestCa } from '../helpers/test-certs.js';

/** Reloads measured (after one warm-up). */
const reloadCount = 30;

export async function runReloadBench(options: { dir: string }): Promise<Record<string, number>> {
  const ca = makeTestCa('bench-reload');
  try {
    const cert = ca.issue('node');
    const tokensFile = path.join(options.dir, 'tokens.json');
    const tokens = Array.from({ length: tokenCountMax }, (_, i) => ({
      token: `bench-token-${String(i).padStart(8, '0')}`,
      scopes: ['read'],
    }));
    fs.writeFileSync(tokensFile, JSON.stringify({ tokens }));
    const config = parseNodeConfig(
      [
        '--node-id',
        '1',
        '--client-tokens-file',
        tokensFile,
        '--tls-cert',
        cert.certFile,
        '--tls-key',
        cert.keyFile,
        '--tls-ca',
        ca.caFile,
        '--peer-mtls',
      ],
      {},
    );
    if (config === 'help') throw new Error('unexpected help');
    const security = loadNodeSecurity(config);
    security.reload();
    const ms: number[] = [];
    for (let i = 0; i < reloadCount; i++) {
      const startedMs = performance.now();
      security.reload();
      ms.push(performance.now() - startedMs);
      await new Promise((resolve) => setImmediate(resolve));
    }
    ms.sort((a, b) => a - b);
    const at = (q: number): number =>
      Number(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(2));
    return { reloadTokenCount: tokenCountMax, reloadMsP50: at(0.5), reloadMsMax: at(1) };
  } finally {
    ca.remove();
  }
}
