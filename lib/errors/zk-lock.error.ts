/**
 * The base class of every error this library throws on purpose.
 *
 * `code` is stable across versions (match on it, not on the message);
 * `name` is the concrete class name, so logs show `LockTimeoutError: ...`.
 */
export abstract class ZkLockError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
