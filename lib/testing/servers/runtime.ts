/**
 * Where a real ZooKeeper server for tests comes from: a local installation run with `java` (the
 * classpath from `ZK_CLASSPATH`, an Apache release at `ZOOKEEPER_HOME`, or Debian's `zookeeper`
 * package), else the official `zookeeper` Docker image when a Docker engine answers. When
 * neither is there, {@link ZooKeeperNotFoundError} says what to install.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** How to run servers: `auto` (local ZooKeeper, else Docker), or one of them only. */
export type ZooKeeperRuntimeChoice = 'auto' | 'java' | 'docker';

export interface JavaRuntime {
  kind: 'java';
  /** The `java` binary. */
  java: string;
  /** ZooKeeper's server classpath. */
  classpath: string;
  /** Where the classpath came from, in words. */
  source: string;
}

export interface DockerRuntime {
  kind: 'docker';
  /** The Docker CLI (or a compatible one, e.g. `podman`). */
  docker: string;
  /** The image, e.g. `zookeeper:3.9`. */
  image: string;
}

export type ZooKeeperRuntime = JavaRuntime | DockerRuntime;

/** The official image used when no local ZooKeeper is found. */
export const DEFAULT_ZOOKEEPER_IMAGE = 'zookeeper:3.9';

/** Debian's `zookeeper` package puts its jar here. */
const DEBIAN_JAVA_DIR = '/usr/share/java';

/** What the search reads of the machine (tests give their own). */
export interface RuntimeProbe {
  env: Readonly<Record<string, string | undefined>>;
  isFile(file: string): boolean;
  /** The names in a directory, [] when it does not exist. */
  list(dir: string): string[];
  /** true when `docker info` answers, else why not (one line). */
  dockerInfo(docker: string): Promise<true | string>;
}

export const systemProbe: RuntimeProbe = {
  env: process.env,
  isFile: (file) => {
    try {
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  },
  list: (dir) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  },
  dockerInfo: (docker) =>
    new Promise((resolve) => {
      execFile(docker, ['info', '--format', '{{.ServerVersion}}'], { timeout: 20_000 }, (error, _stdout, stderr) => {
        if (!error) resolve(true);
        else if ((error as NodeJS.ErrnoException).code === 'ENOENT') resolve(`the ${docker} command is not installed`);
        else resolve(`\`${docker} info\` failed: ${firstLine(stderr) || firstLine(error.message)}`);
      });
    }),
};

/** A local ZooKeeper's classpath, or what was looked at in vain. */
export function findClasspath(probe: RuntimeProbe): { classpath: string; source: string } | { tried: string[] } {
  const { env } = probe;
  if (env['ZK_CLASSPATH']) return { classpath: env['ZK_CLASSPATH'], source: 'ZK_CLASSPATH' };
  const tried = ['ZK_CLASSPATH is not set'];
  const home = env['ZOOKEEPER_HOME'];
  if (home) {
    const lib = path.join(home, 'lib');
    if (probe.list(lib).some((name) => name.endsWith('.jar'))) {
      return {
        classpath: `${lib}${path.sep}*${path.delimiter}${path.join(home, 'conf')}`,
        source: `ZOOKEEPER_HOME (${home})`,
      };
    }
    tried.push(`ZOOKEEPER_HOME is ${home}, but ${lib} has no jar`);
  } else {
    tried.push('ZOOKEEPER_HOME is not set');
  }
  const jar = path.join(DEBIAN_JAVA_DIR, 'zookeeper.jar');
  if (probe.isFile(jar)) {
    // The jar's manifest lists its dependencies but no SLF4J binding: without log4j's the server
    // would log nothing at all (both ship with the package's dependencies).
    const parts = ['/etc/zookeeper/conf', jar];
    for (const name of ['slf4j-log4j12.jar', 'log4j-1.2.jar']) {
      if (probe.isFile(path.join(DEBIAN_JAVA_DIR, name))) parts.push(path.join(DEBIAN_JAVA_DIR, name));
    }
    return { classpath: parts.join(path.delimiter), source: `Debian's zookeeper package (${jar})` };
  }
  tried.push(`${jar} (Debian's zookeeper package) does not exist`);
  return { tried };
}

/** The `java` binary: $JAVA_HOME/bin/java, else `java` on the PATH; undefined when there is none. */
export function findJava(probe: RuntimeProbe): string | undefined {
  const home = probe.env['JAVA_HOME'];
  if (home && probe.isFile(path.join(home, 'bin', 'java'))) return path.join(home, 'bin', 'java');
  for (const dir of (probe.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir && probe.isFile(path.join(dir, 'java'))) return path.join(dir, 'java');
  }
  return undefined;
}

/** Neither a local ZooKeeper nor Docker: the message says what was looked at and what to install. */
export class ZooKeeperNotFoundError extends Error {
  override readonly name = 'ZooKeeperNotFoundError';

  constructor(
    readonly choice: ZooKeeperRuntimeChoice,
    readonly findings: string[],
  ) {
    super(
      [
        `Cannot start a ZooKeeper server for tests: ${NEEDS[choice]}.`,
        ...findings.map((finding) => `  - ${finding}`),
        'Install one of:',
        '  - ZooKeeper and a Java runtime. Debian/Ubuntu: sudo apt-get install zookeeper default-jre-headless',
        '    (found where the package puts it); elsewhere unpack an Apache ZooKeeper release',
        '    (apache-zookeeper-<version>-bin) and set ZOOKEEPER_HOME to it, or set ZK_CLASSPATH to its',
        '    classpath; `java` must be on the PATH or in JAVA_HOME.',
        `  - Docker, with a running engine (\`docker info\` must answer): the official ${DEFAULT_ZOOKEEPER_IMAGE} image`,
        '    is pulled on first use.',
        'Unit tests need neither: use the in-process stand-in (InMemoryZooKeeper, ZkLockTestingModule) from nestjs-zk-lock/testing.',
      ].join('\n'),
    );
  }
}

const NEEDS: Record<ZooKeeperRuntimeChoice, string> = {
  auto: 'no local ZooKeeper (with java) and no Docker engine was found',
  java: 'no local ZooKeeper (with java) was found (runtime: "java")',
  docker: 'no Docker engine answers (runtime: "docker")',
};

/** Finds how to run servers (see the file comment). Rejects with {@link ZooKeeperNotFoundError}. */
export async function findRuntime(
  choice: ZooKeeperRuntimeChoice,
  docker: { docker?: string; image?: string } = {},
  probe: RuntimeProbe = systemProbe,
): Promise<ZooKeeperRuntime> {
  const findings: string[] = [];
  if (choice !== 'docker') {
    const found = findClasspath(probe);
    const java = findJava(probe);
    if ('classpath' in found && java) return { kind: 'java', java, classpath: found.classpath, source: found.source };
    if ('tried' in found) findings.push(`no local ZooKeeper: ${found.tried.join('; ')}`);
    else
      findings.push(`ZooKeeper found (${found.source}), but no java: JAVA_HOME is not set and no java is on the PATH`);
  }
  if (choice !== 'java') {
    const cli = docker.docker ?? 'docker';
    const answer = await probe.dockerInfo(cli);
    if (answer === true) return { kind: 'docker', docker: cli, image: docker.image ?? DEFAULT_ZOOKEEPER_IMAGE };
    findings.push(`no Docker: ${answer}`);
  }
  throw new ZooKeeperNotFoundError(choice, findings);
}

const cached = new Map<string, Promise<ZooKeeperRuntime>>();

/** {@link findRuntime} on this machine, once per choice (a failure is not kept: install, then try again). */
export function runtimeFor(
  choice: ZooKeeperRuntimeChoice,
  docker: { docker?: string; image?: string } = {},
): Promise<ZooKeeperRuntime> {
  const key = `${choice}\0${docker.docker ?? ''}\0${docker.image ?? ''}`;
  let found = cached.get(key);
  if (!found) {
    found = findRuntime(choice, docker);
    cached.set(key, found);
    found.catch(() => cached.delete(key));
  }
  return found;
}

/** ZooKeeper's server classpath on this machine (rejects with {@link ZooKeeperNotFoundError}). */
export async function zooKeeperClasspath(): Promise<string> {
  const runtime = await runtimeFor('java');
  return (runtime as JavaRuntime).classpath;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
