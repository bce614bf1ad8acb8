/**
 * Loaded into a walrus-node by the binary bench (NODE_OPTIONS=--import, which cannot carry
 * --cpu-prof) when BENCH_NODE_CPU_PROF_DIR is set: profiles the whole process with the in-process
 * inspector and writes `node-<pid>.cpuprofile` there when the process exits (SIGTERM → exit).
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const dir = process.env['BENCH_NODE_CPU_PROF_DIR'];
if (dir !== undefined) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-process session answers synchronously, so this works inside 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (err === null)
        fs.writeFileSync(path.join(dir, `node-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
