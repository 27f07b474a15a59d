/**
 * The sample's HTTP app: `POST /log` appends the next numbered line to the shared log under the
 * distributed lock `/locks/write_lock` (taken by `@DistributedLock` on the handler) and answers
 * `{ counter, token }`; `POST /log-unlocked` does the same without the lock (`--no-lock`).
 *
 * `npm run sample -- --http` runs two instances of it (sample/http-instance.ts) as two processes
 * with one ZooKeeper session each, and sends them requests (sample/http-load.ts).
 */
import { Controller, Module, Post, type DynamicModule } from '@nestjs/common';
import { CurrentLock, DistributedLock, ZkLockModule, type LockHandle } from '../lib/index.js';
import { appendNextLine, LOCK_PATH } from './log-file.js';
import { ENV, requireEnv, requirePositiveEnv } from './messages.js';

/** An instance's settings, from the environment sample/main.js sets. Provided by value, injected by type. */
export class HttpAppConfig {
  constructor(
    readonly connectionString: string,
    /** 1-based; written into each line as `worker=<instanceId>`. */
    readonly instanceId: number,
    readonly logFile: string,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): HttpAppConfig {
    return new HttpAppConfig(
      requireEnv(env, ENV.connect),
      requirePositiveEnv(env, ENV.workerId),
      requireEnv(env, ENV.log),
    );
  }
}

/** The answer of both routes: the counter of the line written, and the fencing token in it (`null` without the lock). */
export interface LogEntry {
  counter: number;
  token: string | null;
}

@Controller()
export class LogController {
  constructor(private readonly config: HttpAppConfig) {}

  /** One line under the lock: `@DistributedLock` holds it from before this runs until its Promise settles. */
  @Post('log')
  @DistributedLock(LOCK_PATH)
  async append(@CurrentLock() lock: LockHandle): Promise<LogEntry> {
    const token = lock.fencingToken.toString();
    const counter = await appendNextLine(this.config.logFile, {
      workerId: this.config.instanceId,
      token,
      signal: lock.signal,
    });
    return { counter, token };
  }

  /** The same read-modify-write without the lock: shows the damage the lock prevents. */
  @Post('log-unlocked')
  async appendUnlocked(): Promise<LogEntry> {
    const counter = await appendNextLine(this.config.logFile, { workerId: this.config.instanceId, token: '-' });
    return { counter, token: null };
  }
}

@Module({})
export class HttpAppModule {
  static forRoot(config: HttpAppConfig): DynamicModule {
    return {
      module: HttpAppModule,
      imports: [
        ZkLockModule.forRoot({
          connectionString: config.connectionString,
          appName: `sample-http-${config.instanceId}`,
          connectTimeout: 30_000,
        }),
      ],
      controllers: [LogController],
      providers: [{ provide: HttpAppConfig, useValue: config }],
    };
  }
}
