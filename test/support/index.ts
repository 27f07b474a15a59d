/** Test support: real ZooKeeper servers, four letter words, a TCP proxy, polling helpers. */
export * from './zookeeper.js';
export * from './four-letter.js';
export * from './proxy.js';
export * from './wait.js';
