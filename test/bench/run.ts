/**
 * `npm run bench -- <wal|raft|gateway|replication|shared-disk|reload|scale|all>`: runs benchmarks, prints the figures,
 * writes test/bench/results/<name>.json, and ends with one JSON line of the figures. Benchmarks never
 * pass or fail on time; targets are printed beside the figures for the reader. `all` leaves out the
 * benchmarks marked `explicitOnly` (scale writes 10 GB: it runs only when named).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

type Figures = Record<string, number | string | boolean>;

const benches: Record<
  string,
  { targets: Record<string, string>; explicitOnly?: boolean; run: (dir: string) => Promise<Figures> }
> = {
  wal: {
    // binaryRatio: binary appends/s over a bare framed echo of the same shape, run in alternating
    // slices in the same run (binary-bench.ts, framed-echo.ts).
    targets: { walSpeedup: '>= 50', binaryAppendsPerSec: '>= 100000', binaryRatio: '>= 0.4' },
    run: async (dir) => {
      const { runWalBench } = await import('./wal-bench.js');
      const { runBinaryBench } = await import('./binary-bench.js');
      const wal = await runWalBench({ dir, durationMs: envInt('BENCH_DURATION_MS', 5000) });
      const binary = await runBinaryBench({ dir, durationMs: envInt('BENCH_DURATION_MS', 5000) });
      return { ...wal, ...binary };
    },
  },
  raft: {
    targets: { failoverMsP99: '<= 3000', metadataCommitsPerSec: '>= 2000' },
    run: async (dir) => {
      const mod = (await import(lateModule('./raft-bench.js'))) as {
        runRaftBench(o: { dir: string }): Promise<Figures>;
      };
      return mod.runRaftBench({ dir });
    },
  },
  gateway: {
    targets: { gatewayRatio: '>= 0.5', sseTailsHeld: '>= 10000', sseDeliveryMsP99: '<= 50' },
    run: async (dir) => {
      const mod = (await import(lateModule('./gateway-bench.js'))) as {
        runGatewayBench(o: { dir: string; durationMs: number }): Promise<Figures>;
      };
      return mod.runGatewayBench({ dir, durationMs: envInt('BENCH_DURATION_MS', 5000) });
    },
  },
  replication: {
    // The same targets as replicationTargets in replication-bench.ts, which prints them in its table.
    targets: {
      pipelinedRatio: '>= 1.5',
      syncP50Ratio: '<= 1.0',
      consumeRatio: '>= 2',
      segmentFailoverMsP99: '<= 5000',
    },
    run: async (dir) => {
      // Knobs: BENCH_SECONDS, BENCH_CONSUME_RECORDS, BENCH_FAILOVER_RUNS, BENCH_FAILOVER_BOUND_MS,
      // BENCH_CONNECTIONS, BENCH_QUICK=1 (see the file's header).
      const { runReplicationBench } = await import('./replication-bench.js');
      return runReplicationBench({ dir });
    },
  },
  'shared-disk': {
    // Floors, not targets: what fdatasync'd copies cost on this one disk (shared-disk-bench.ts).
    targets: {},
    run: async (dir) => {
      const { runSharedDiskBench } = await import('./shared-disk-bench.js');
      return runSharedDiskBench({ dir });
    },
  },
  reload: {
    // How long a SIGHUP reload (10,000 tokens, certificate, key, CA) holds the event loop.
    targets: { reloadMsP50: '<= 100' },
    run: async (dir) => {
      const { runReloadBench } = await import('./reload-bench.js');
      return runReloadBench({ dir });
    },
  },
  scale: {
    // The same targets as scaleTargets in scale-bench.ts. Knobs: BENCH_SCALE_GB, BENCH_SCALE_TOPICS,
    // BENCH_SCALE_FSYNC and more (see the file's header and docs/benchmarks.md).
    targets: { scaleRssMB: '<= 200', scaleRestartMs: '<= 2000', scaleRandomReadP99Ms: '<= 5' },
    explicitOnly: true,
    run: async (dir) => {
      const { runScaleBench } = await import('./scale-bench.js');
      return runScaleBench({ dir });
    },
  },
};

/** A module another issue adds; resolved at run time so this runner builds without it. */
function lateModule(spec: string): string {
  return spec;
}

function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const selected =
    names.length === 0 || names.includes('all')
      ? Object.keys(benches).filter((name) => benches[name]?.explicitOnly !== true)
      : names;
  const resultsDir = path.resolve(import.meta.dirname, '../../../test/bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const all: Figures = {};
  for (const name of selected) {
    const bench = benches[name];
    if (bench === undefined) {
      console.error(`unknown benchmark '${name}'; choose from: ${Object.keys(benches).join(', ')}, all`);
      process.exit(2);
    }
    const dir = fs.mkdtempSync(path.join(process.env['BENCH_DIR'] ?? os.tmpdir(), `walrus-bench-${name}-`));
    try {
      console.log(`# bench ${name} (data in ${dir})`);
      const figures = await bench.run(dir);
      for (const [key, value] of Object.entries(figures)) {
        const target = bench.targets[key];
        console.log(`${key.padEnd(32)} ${String(value).padStart(14)}${target ? `   target ${target}` : ''}`);
      }
      const record = {
        bench: name,
        at: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        ...figures,
      };
      fs.writeFileSync(path.join(resultsDir, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
      Object.assign(all, figures);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(JSON.stringify(all));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
