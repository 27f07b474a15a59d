/** A shell that outlives nothing: it holds a pipe to this process, and cleans up after it when the pipe closes (however the process ends). */
import { spawn, type ChildProcess } from 'node:child_process';
import type * as net from 'node:net';

export class Watchdog {
  private readonly child: ChildProcess;
  private readonly exited: Promise<unknown>;

  constructor(script: string, env: Record<string, string>) {
    this.child = spawn('/bin/sh', ['-c', script], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
      detached: true,
    });
    this.child.unref();
    (this.child.stdin as net.Socket).unref();
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', resolve);
      this.child.once('error', resolve);
    });
  }

  tell(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Stops watching (nothing left to clean up). */
  async stop(): Promise<void> {
    this.child.ref();
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** For the exit hook: kills the watchdog without waiting. */
  killSync(): void {
    try {
      if (this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
