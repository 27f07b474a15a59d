/** Polling helpers (wait for a condition with a deadline instead of sleeping): the testing kit's. */
export { delay, waitFor, type WaitForOptions } from '../../lib/testing/wait.js';
