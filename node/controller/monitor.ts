/**
 * The monitor loop (Walrus's "Monitor loop started"): every WALRUS_MONITOR_CHECK_MS it runs the
 * node's periodic work in order, one round at a time (a slow round is never overlapped by the
 * next). A failing task is logged and the others still run.
 */
import type { Logger } from '../log.js';
import { type Scheduler, type TimerHandle, realScheduler } from '../scheduler.js';

export interface MonitorTask {
  readonly name: string;
  run(): Promise<void>;
}

export class Monitor {
  private timer: TimerHandle | null = null;
  private running = false;
  private readonly tasks: readonly MonitorTask[];
  private readonly logger: Logger;

  private readonly scheduler: Scheduler;

  constructor(tasks: readonly MonitorTask[], logger: Logger, scheduler: Scheduler = realScheduler) {
    this.tasks = tasks;
    this.logger = logger;
    this.scheduler = scheduler;
  }

  start(intervalMs: number): void {
    this.timer = this.scheduler.setInterval(() => void this.tick(), intervalMs);
    this.timer.unref?.();
    this.logger.info({ intervalMs }, 'Monitor loop started');
  }

  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const task of this.tasks) {
        try {
          await task.run();
        } catch (error) {
          this.logger.error({ task: task.name, err: String(error) }, 'monitor tick failed');
        }
      }
    } finally {
      this.running = false;
    }
  }

  stop(): void {
    if (this.timer) this.scheduler.clearInterval(this.timer);
    this.timer = null;
  }
}
