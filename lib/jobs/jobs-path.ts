import { encodeLockKey, validateLockPath } from '../lock/lock-path.js';

/** Where jobs and elections without an explicit path live, unless the `jobsPath` option says otherwise. */
export const DEFAULT_JOBS_PATH = '/zk-lock/jobs';

/**
 * The module's `jobsPath` option (the parent of default job and election paths), or
 * {@link DEFAULT_JOBS_PATH} when it is not set (or the option does not exist in these options).
 */
export function jobsPathOf(options: object): string {
  const value = (options as { jobsPath?: unknown }).jobsPath;
  return value === undefined || value === null ? DEFAULT_JOBS_PATH : validateLockPath(value, 'jobsPath');
}

/**
 * The default path of a job or election: `<jobsPath>/<Class>.<method>` (or `<jobsPath>/<Class>`
 * for a class), each name encoded as with `encodeLockKey` (identifiers stay as they are; a name
 * never contains a "." once encoded, so distinct pairs give distinct paths).
 */
export function defaultJobPath(jobsPath: string, className: string, methodName?: string): string {
  const segment =
    methodName === undefined ? encodeLockKey(className) : `${encodeLockKey(className)}.${encodeLockKey(methodName)}`;
  return validateLockPath(`${jobsPath}/${segment}`);
}
