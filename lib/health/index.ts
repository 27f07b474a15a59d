// The `nestjs-zk-lock/health` entry point: the only one that imports @nestjs/terminus (an optional peer dependency).
// First: fails at once if the other build (ESM / CommonJS) of this package is loaded too.
import '../dual-load-guard.js';
export { ZkHealthIndicator, type ZkHealthDetails } from './zk-health.indicator.js';
