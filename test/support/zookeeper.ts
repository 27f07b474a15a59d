/**
 * Real ZooKeeper servers for the project's tests: the testing kit's (lib/testing, published as
 * `nestjs-zk-lock/testing`), plus what only this repository has: `scripts/zookeeper.sh` to install a
 * missing ZooKeeper (when root on Debian/Ubuntu) and the Java fixtures of test/fixtures.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startEnsemble as startKitEnsemble,
  startZooKeeper as startKitZooKeeper,
  zooKeeperClasspath as kitClasspath,
  type ZkEnsemble,
  type ZkServer,
  type ZkServerOptions,
} from '../../lib/testing/index.js';
import { findJava, systemProbe } from '../../lib/testing/servers/runtime.js';

export { stopAllZooKeepers, type ZkEnsemble, type ZkServer, type ZkServerOptions } from '../../lib/testing/index.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

let installing: Promise<void> | undefined;

/** When no local ZooKeeper is found: `scripts/zookeeper.sh ensure` (installs it when root on Debian/Ubuntu), once. */
async function ensureInstalled(): Promise<void> {
  if (
    await kitClasspath().then(
      () => true,
      () => false,
    )
  )
    return;
  installing ??= new Promise<void>((resolve, reject) => {
    const script = path.join(REPO_ROOT, 'scripts', 'zookeeper.sh');
    execFile('bash', [script, 'ensure'], { maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      installing = undefined;
      if (err) reject(new Error(`${script} failed (${err.message.split('\n')[0]}):\n${stderr}`));
      else resolve();
    });
  });
  await installing;
}

/** ZooKeeper's Java classpath (ZK_CLASSPATH, ZOOKEEPER_HOME, Debian's package), installing it first if need be. */
export async function zooKeeperClasspath(): Promise<string> {
  await ensureInstalled();
  return kitClasspath();
}

/** Starts a standalone server (see the kit's startZooKeeper), installing ZooKeeper first if need be. */
export async function startZooKeeper(opts: ZkServerOptions = {}): Promise<ZkServer> {
  if ((opts.runtime ?? 'auto') !== 'docker') await ensureInstalled().catch(() => undefined);
  return startKitZooKeeper(opts);
}

/** Starts an ensemble (see the kit's startEnsemble), installing ZooKeeper first if need be. */
export async function startEnsemble(opts: ZkServerOptions & { size?: number } = {}): Promise<ZkEnsemble> {
  if ((opts.runtime ?? 'auto') !== 'docker') await ensureInstalled().catch(() => undefined);
  return startKitEnsemble(opts);
}

/**
 * Runs a source-launched Java fixture (`test/fixtures/<name>.java`) on ZooKeeper's classpath and
 * resolves with its stdout; rejects with its stderr when it exits non-zero.
 */
export async function runJavaFixture(name: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const classpath = await zooKeeperClasspath();
  const source = path.join(REPO_ROOT, 'test', 'fixtures', `${name}.java`);
  return new Promise((resolve, reject) => {
    execFile(
      findJava(systemProbe) ?? 'java',
      ['-XX:-UsePerfData', '-Dlog4j.rootLogger=OFF', '-cp', classpath, source, ...args],
      { timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${name}.java failed (${err.message.split('\n')[0]}):\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}
