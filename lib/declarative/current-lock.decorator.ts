import { createParamDecorator } from '@nestjs/common';
import { anyHeldInContext, innermostInContext } from '../lock/lock-context.js';
import { validateLockPath } from '../lock/lock-path.js';

/**
 * Handler parameter: the LockHandle that @DistributedLock holds for this call (its fencing token
 * and lost-lock signal), or the one for `path`. `undefined` outside a locked call.
 *
 * @example
 * \@Post() \@DistributedLock('/locks/ledger')
 * write(\@Body() entry: Entry, \@CurrentLock() lock: LockHandle) { return this.ledger.append(entry, lock.fencingToken); }
 */
// The explicit type keeps Nest 12's own decorator types out of our declarations (Nest 11 lacks them).
export const CurrentLock: (path?: string) => ParameterDecorator = createParamDecorator((path: string | undefined) =>
  path === undefined ? innermostInContext() : anyHeldInContext(validateLockPath(path)),
);
