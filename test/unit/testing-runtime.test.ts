/**
 * Where the testing kit's real servers come from (lib/testing/servers/runtime.ts), on made-up
 * machines: ZK_CLASSPATH, ZOOKEEPER_HOME, Debian's package, java, Docker; and the error that says
 * what to install when there is neither a local ZooKeeper nor a Docker engine.
 */
import { describe, expect, it } from 'vitest';
import { findRuntime, ZooKeeperNotFoundError, type RuntimeProbe } from '../../lib/testing/servers/runtime.js';

/** A machine with these files and this environment; `docker info` answers as given. */
function machine(
  files: string[],
  env: Record<string, string> = {},
  docker: true | string = 'the docker command is not installed',
): RuntimeProbe & { dockerAsked: string[] } {
  const asked: string[] = [];
  return {
    env: { PATH: '/usr/bin:/bin', ...env },
    isFile: (file) => files.includes(file),
    list: (dir) => files.filter((file) => file.startsWith(`${dir}/`)).map((file) => file.slice(dir.length + 1)),
    dockerInfo: async (cli) => {
      asked.push(cli);
      return docker;
    },
    dockerAsked: asked,
  };
}

const DEBIAN = ['/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'];
const JAVA = '/usr/bin/java';

describe('findRuntime', () => {
  it("Debian's package with its log4j binding, and java on the PATH", async () => {
    const probe = machine([...DEBIAN, JAVA]);
    expect(await findRuntime('auto', {}, probe)).toEqual({
      kind: 'java',
      java: JAVA,
      classpath:
        '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar',
      source: "Debian's zookeeper package (/usr/share/java/zookeeper.jar)",
    });
    expect(probe.dockerAsked).toEqual([]); // a local ZooKeeper wins: Docker is not even asked
  });

  it('ZK_CLASSPATH first, then ZOOKEEPER_HOME (an Apache release), then Debian; JAVA_HOME before the PATH', async () => {
    const release = ['/opt/zk/lib/zookeeper-3.9.3.jar', '/opt/zk/lib/zookeeper-jute-3.9.3.jar'];
    const javaHome = '/opt/jdk/bin/java';
    const both = machine([...DEBIAN, ...release, JAVA, javaHome], { ZOOKEEPER_HOME: '/opt/zk', JAVA_HOME: '/opt/jdk' });
    expect(await findRuntime('auto', {}, both)).toMatchObject({
      java: javaHome,
      classpath: '/opt/zk/lib/*:/opt/zk/conf',
      source: 'ZOOKEEPER_HOME (/opt/zk)',
    });
    const explicit = machine([...DEBIAN, JAVA], { ZK_CLASSPATH: '/x/a.jar:/x/b.jar', ZOOKEEPER_HOME: '/opt/zk' });
    expect(await findRuntime('java', {}, explicit)).toMatchObject({
      classpath: '/x/a.jar:/x/b.jar',
      source: 'ZK_CLASSPATH',
    });
  });

  it('no local ZooKeeper, a Docker engine: the official image, or the one asked for with the CLI asked for', async () => {
    expect(await findRuntime('auto', {}, machine([JAVA], {}, true))).toEqual({
      kind: 'docker',
      docker: 'docker',
      image: 'zookeeper:3.9',
    });
    const podman = machine([...DEBIAN, JAVA], {}, true);
    expect(await findRuntime('docker', { docker: 'podman', image: 'zookeeper:3.8.4' }, podman)).toEqual({
      kind: 'docker',
      docker: 'podman',
      image: 'zookeeper:3.8.4',
    });
    expect(podman.dockerAsked).toEqual(['podman']);
  });

  it('neither: ZooKeeperNotFoundError says what was looked at and what to install', async () => {
    const none = machine(
      [JAVA],
      { ZOOKEEPER_HOME: '/opt/empty' },
      '`docker info` failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
    );
    const error = await findRuntime('auto', {}, none).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZooKeeperNotFoundError);
    const message = (error as Error).message;
    expect(message).toContain('no local ZooKeeper (with java) and no Docker engine was found');
    expect(message).toContain('ZK_CLASSPATH is not set');
    expect(message).toContain('ZOOKEEPER_HOME is /opt/empty, but /opt/empty/lib has no jar');
    expect(message).toContain("/usr/share/java/zookeeper.jar (Debian's zookeeper package) does not exist");
    expect(message).toContain('Cannot connect to the Docker daemon');
    expect(message).toContain('sudo apt-get install zookeeper default-jre-headless');
    expect(message).toContain('set ZOOKEEPER_HOME');
    expect(message).toContain('`docker info` must answer');
    expect(message).toContain('InMemoryZooKeeper');
  });

  it('ZooKeeper without java, or runtime "java" only: says java is missing and does not ask Docker', async () => {
    const noJava = machine(DEBIAN, { PATH: '/nowhere' }, true);
    const error = (await findRuntime('java', {}, noJava).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(ZooKeeperNotFoundError);
    expect(error.message).toContain('no java: JAVA_HOME is not set and no java is on the PATH');
    expect(noJava.dockerAsked).toEqual([]);
    // The same machine with runtime "auto" falls back to its Docker engine.
    expect((await findRuntime('auto', {}, noJava)).kind).toBe('docker');
  });

  it('runtime "docker" without an engine: says so, whatever is installed locally', async () => {
    const error = (await findRuntime('docker', {}, machine([...DEBIAN, JAVA])).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('no Docker engine answers (runtime: "docker")');
    expect(error.message).toContain('the docker command is not installed');
  });
});
