/**
 * The http workload's Nest application (Express): the same trivial handler twice, once behind
 * `@DistributedLock` and once plain, so that the difference of their latencies is what the lock
 * costs a request.
 */
import 'reflect-metadata';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { DistributedLock, ZkLockModule } from '../lib/index.js';

export const HTTP_LOCK_PATH = '/bench/http';

@Controller()
export class BenchController {
  private served = 0;

  @Get('locked')
  @DistributedLock(HTTP_LOCK_PATH)
  async locked(): Promise<{ served: number }> {
    return { served: ++this.served };
  }

  @Get('plain')
  plain(): { served: number } {
    return { served: ++this.served };
  }
}

/** The nest workload's service: w1's empty critical section behind @DistributedLock, called directly (no HTTP). */
export const NEST_LOCK_PATH = '/bench/nest';

@Injectable()
export class NestBenchService {
  @DistributedLock(NEST_LOCK_PATH)
  async locked(): Promise<void> {}
}

/** The nest workload's module: the service, and the library with its defaults. */
export function nestBenchModule(connectionString: string): new () => object {
  @Module({ imports: [ZkLockModule.forRoot({ connectionString })], providers: [NestBenchService] })
  class NestBenchModule {}
  return NestBenchModule;
}

/** The application module, connected to `connectionString` with the library's defaults. */
export function httpBenchModule(connectionString: string): new () => object {
  @Module({
    imports: [ZkLockModule.forRoot({ connectionString })],
    controllers: [BenchController],
  })
  class HttpBenchModule {}
  return HttpBenchModule;
}
