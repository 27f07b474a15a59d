/** Unit tests of the per-call options table: every call of LockService checks its options with it, before any request. */
import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, LockService, ZkConnectionService, type AcquireOptions } from '../../lib/index.js';
import { ACQUIRE_OPTION_RULES, checkAcquireOptions } from '../../lib/lock/acquire-options.js';

/** A service on a connection that never connects: a call that passes the checks would try to. */
function service(): LockService {
  return new LockService(new ZkConnectionService({ connectionString: '127.0.0.1:1', lazyConnect: true }));
}

describe('per-call options', () => {
  it('has one rule per AcquireOptions field', () => {
    expect(Object.keys(ACQUIRE_OPTION_RULES).toSorted()).toEqual(
      ['leases', 'mode', 'reentrant', 'revocable', 'signal', 'timeout'].toSorted(),
    );
  });

  it.each([
    [{ signal: 'stop' }, 'signal', 'must be an AbortSignal'],
    [{ timeout: -1 }, 'timeout', 'must be a number >= 0 of milliseconds (or Infinity)'],
    [{ reentrant: 'yes' }, 'reentrant', 'must be true or false'],
    [{ revocable: 1 }, 'revocable', 'must be true or false'],
    [{ mode: 'exclusive' }, 'mode', "must be 'read' or 'write'"],
    [{ leases: 0 }, 'leases', 'must be a whole number from 1 to 10000'],
  ])('%j is refused by acquire and tryAcquire with InvalidOptionsError naming %s', async (options, option, rule) => {
    const locks = service();
    const calls = [() => locks.acquire('/locks/a', options as AcquireOptions)];
    // (tryAcquire takes no timeout: it sets 0 itself)
    if (option !== 'timeout') calls.push(() => locks.tryAcquire('/locks/a', options as AcquireOptions) as never);
    for (const call of calls) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ option, rule });
    }
  });

  it('valid options pass, and unset ones are not checked', () => {
    expect(() =>
      checkAcquireOptions({ timeout: 0, signal: new AbortController().signal, reentrant: false, mode: 'read' }),
    ).not.toThrow();
    expect(() => checkAcquireOptions({})).not.toThrow();
  });
});
