// The `zk-lock/health` entry point: the only one that imports @nestjs/terminus (an optional peer dependency).
export { ZkHealthIndicator, type ZkHealthDetails } from './zk-health.indicator.js';
