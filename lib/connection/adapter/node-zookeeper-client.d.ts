// node-zookeeper-client (CommonJS) ships no types: raw-client.ts imports its module.exports as
// `unknown` and gives them the types it declares. This file is read by the compiler only (no output).
declare module 'node-zookeeper-client' {
  const zookeeper: unknown;
  export = zookeeper;
}
declare module 'node-zookeeper-client/lib/jute/index.js' {
  const jute: unknown;
  export = jute;
}
declare module 'node-zookeeper-client/lib/Exception.js' {
  const exceptions: Record<string, unknown>;
  export = exceptions;
}
