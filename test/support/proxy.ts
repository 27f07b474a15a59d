/** The TCP proxy that cuts connections: the testing kit's (lib/testing/proxy.ts). */
export {
  TcpProxy,
  isNotification,
  isPing,
  type CutFrame,
  type Direction,
  type ProxyTarget,
  type ZkFrame,
} from '../../lib/testing/proxy.js';
