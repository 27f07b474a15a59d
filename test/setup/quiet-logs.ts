/**
 * Quiet test runs: Nest's Logger (the library's connection and lock lines, and Nest's own) prints
 * nothing unless ZK_LOCK_TEST_LOGS asks for it, e.g. `ZK_LOCK_TEST_LOGS=debug npm test -- test/e2e`.
 * Values: off (the default), fatal, error, warn, log, debug, verbose (that level and the ones
 * above it). A Vitest setup file (vitest.config.ts, setupFiles): runs before each test file. Tests
 * that give an application its own logger, or capture logs with Logger.overrideLogger, still get
 * every line they ask for.
 */
import { Logger, type LogLevel } from '@nestjs/common';

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];
const wanted = (process.env.ZK_LOCK_TEST_LOGS ?? '').trim().toLowerCase() || 'off';

const level = wanted === 'off' ? -1 : LEVELS.indexOf(wanted as LogLevel);
if (wanted !== 'off' && level < 0) throw new Error(`ZK_LOCK_TEST_LOGS=${wanted}: use off, ${LEVELS.join(', ')}`);
// Levels, not `false`: Nest's default loggers made later (a test that restores `new Logger()`)
// take these levels too.
Logger.overrideLogger(LEVELS.slice(0, level + 1));
