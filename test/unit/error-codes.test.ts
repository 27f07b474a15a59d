/** Unit test: how server error codes become ZooKeeperError codes (what the recipe retries and what it gives up on). */
import { describe, expect, it } from 'vitest';
import { errorCodeOf } from '../../lib/connection/adapter/requests.js';
import { ZooKeeperError } from '../../lib/errors/zookeeper.error.js';
import { isTransient } from '../../lib/lock/recipe/attempt.js';

describe('server error codes', () => {
  it.each([
    [-101, 'NO_NODE', false],
    [-102, 'NO_AUTH', false],
    [-4, 'CONNECTION_LOSS', true],
    [-125, 'QUOTA_EXCEEDED', false],
    [-127, 'THROTTLED', true],
    [-122, 'THROTTLED', true],
    [-118, 'THROTTLED', true],
    [-14, 'THROTTLED', true],
    [-13, 'THROTTLED', true],
    [-124, 'OTHER', false],
    [-999, 'OTHER', false],
  ] as const)('%i is %s (retried: %s)', (code, name, retried) => {
    expect(errorCodeOf(code)).toBe(name);
    expect(isTransient(new ZooKeeperError(errorCodeOf(code), 'create', '/locks/a'))).toBe(retried);
  });
});
