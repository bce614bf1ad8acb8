/**
 * CPU time of a process, for figures that do not depend on how loaded the machine or how fast its
 * disk is: the CPU a benchmark spends per operation, in the client (this process) and the server
 * (another process, read from /proc: Linux only; elsewhere the server's share is NaN).
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const userHz = 100;

/** CPU milliseconds (user + system) this process has used. */
export function selfCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** CPU milliseconds (user + system) process `pid` has used, at 10 ms resolution; NaN if unknown. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses: utime is field 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / userHz;
  } catch {
    return Number.NaN;
  }
}
