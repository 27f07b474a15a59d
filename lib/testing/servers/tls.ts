/**
 * Throwaway TLS material for test servers, made with the JDK's keytool: a test CA, the servers'
 * certificate (for 127.0.0.1 and localhost) in a PKCS#12 key store, a trust store holding the CA,
 * and client certificates as PEM files for Node (the private key is taken out of keytool's key
 * store by a few lines of Java, as keytool cannot write one). EC P-256 keys: quick to make.
 * Everything lives in one temp dir per process, removed when the process ends (however it ends:
 * a watchdog, as for the servers).
 *
 * Also the four letter words over TLS (a server with only a secureClientPort answers them there).
 */
import { X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { runtimeFor, type JavaRuntime } from './runtime.js';
import { Watchdog } from './watchdog.js';

/** A certificate and its key, as files and as text. */
export interface TlsCertificate {
  /** The subject as ZooKeeper's x509 auth provider names it (RFC 2253), e.g. `CN=app-a,O=zk-lock tests`. */
  readonly subject: string;
  /** The certificate (PEM). */
  readonly cert: string;
  /** Its private key (PEM, PKCS#8, unencrypted). */
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** A PKCS#12 key store with the key and the chain (alias = the name), password {@link TLS_PASSWORD}. */
  readonly keyStore: string;
}

export interface TestCertificateOptions {
  /** The subject's CN (default: the name). */
  commonName?: string;
  /** Who signs it: the kit's CA, which test servers trust (default), or another CA nobody trusts. */
  issuer?: 'test-ca' | 'other-ca';
  /** Start of validity, in days from now (default -1: since yesterday). */
  startDays?: number;
  /** Days of validity from the start (default 3). `{ startDays: -3, validDays: 1 }` expired yesterday. */
  validDays?: number;
  /** Subject alternative names, keytool's syntax (default none; servers get `ip:127.0.0.1,dns:localhost`). */
  san?: string;
}

/** The password of every key store and trust store made here. */
export const TLS_PASSWORD = 'nestjs-zk-lock-test';
const ORG = 'O=zk-lock tests';

/** The kit's CA and what servers need: made once per process. */
export interface TestTlsMaterial {
  /** The test CA's certificate (PEM): a client's `tls.ca`. */
  readonly ca: string;
  readonly caFile: string;
  /** PKCS#12 trust store holding the test CA (a server's ssl.trustStore). */
  readonly trustStore: string;
  /** The servers' certificate (CN=zookeeper, for 127.0.0.1 and localhost). */
  readonly server: TlsCertificate;
  /** A client certificate the test CA signed (CN=zk-lock-test-client): the harness's own. */
  readonly client: TlsCertificate;
  readonly dir: string;
}

let material: Promise<TestTlsMaterial> | undefined;

/** The process's test CA, server and client certificates (made on first use, about 5 s of keytool). */
export function testTlsMaterial(): Promise<TestTlsMaterial> {
  material ??= makeMaterial();
  material.catch(() => (material = undefined));
  return material;
}

/**
 * A certificate for tests, signed by the kit's CA (or another one), e.g. a second app's client
 * certificate, an expired one, or one no server trusts. The name must be new in this process.
 */
export async function issueTestCertificate(
  name: string,
  options: TestCertificateOptions = {},
): Promise<TlsCertificate> {
  const { dir } = await testTlsMaterial();
  if (options.issuer === 'other-ca') await otherCa(dir);
  return issue(dir, name, options);
}

async function makeMaterial(): Promise<TestTlsMaterial> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-zk-lock-tls-'));
  const watchdog = new Watchdog('while read -r line; do :; done; rm -rf "$ZK_DIR"', { ZK_DIR: dir });
  void watchdog; // kept alive by its pipe until this process ends
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'PemKey.java'), PEM_KEY_JAVA);
  await makeCa(dir, 'test-ca', 'CN=zk-lock test CA');
  await keytool(dir, [
    '-importcert',
    '-keystore',
    'trust.p12',
    '-alias',
    'test-ca',
    '-file',
    'test-ca.pem',
    '-noprompt',
  ]);
  const [server, client] = await Promise.all([
    issue(dir, 'zookeeper', { san: 'ip:127.0.0.1,dns:localhost' }),
    issue(dir, 'zk-lock-test-client'),
  ]);
  const caFile = path.join(dir, 'test-ca.pem');
  return { ca: fs.readFileSync(caFile, 'utf8'), caFile, trustStore: path.join(dir, 'trust.p12'), server, client, dir };
}

let other: Promise<void> | undefined;
function otherCa(dir: string): Promise<void> {
  other ??= makeCa(dir, 'other-ca', 'CN=another CA');
  return other;
}

async function makeCa(dir: string, name: string, dname: string): Promise<void> {
  await keytool(dir, [
    '-genkeypair',
    '-keystore',
    `${name}.p12`,
    '-alias',
    'ca',
    '-dname',
    `${dname}, ${ORG}`,
    ...EC,
    '-validity',
    '30',
    '-ext',
    'bc:c',
  ]);
  await keytool(dir, ['-exportcert', '-rfc', '-keystore', `${name}.p12`, '-alias', 'ca', '-file', `${name}.pem`]);
}

const EC = ['-keyalg', 'EC', '-groupname', 'secp256r1'];

/** A key pair in `<name>.p12`, its certificate signed by the CA, the chain in the key store, the key as PEM. */
async function issue(dir: string, name: string, options: TestCertificateOptions = {}): Promise<TlsCertificate> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`issueTestCertificate: bad name ${JSON.stringify(name)}`);
  if (fs.existsSync(path.join(dir, `${name}.p12`))) throw new Error(`issueTestCertificate: ${name} exists already`);
  const issuer = options.issuer ?? 'test-ca';
  const store = `${name}.p12`;
  const dname = `CN=${options.commonName ?? name}, ${ORG}`;
  await keytool(dir, ['-genkeypair', '-keystore', store, '-alias', name, '-dname', dname, ...EC, '-validity', '30']);
  await keytool(dir, ['-certreq', '-keystore', store, '-alias', name, '-file', `${name}.csr`]);
  const start = options.startDays ?? -1;
  await keytool(dir, [
    '-gencert',
    '-rfc',
    '-keystore',
    `${issuer}.p12`,
    '-alias',
    'ca',
    '-infile',
    `${name}.csr`,
    '-outfile',
    `${name}.pem`,
    '-startdate',
    `${start >= 0 ? '+' : '-'}${Math.abs(start)}d`,
    '-validity',
    String(options.validDays ?? 3),
    ...(options.san ? ['-ext', `san=${options.san}`] : []),
  ]);
  await keytool(dir, ['-importcert', '-keystore', store, '-alias', 'ca', '-file', `${issuer}.pem`, '-noprompt']);
  await keytool(dir, ['-importcert', '-keystore', store, '-alias', name, '-file', `${name}.pem`, '-noprompt']);
  await runJava(dir, ['PemKey.java', store, TLS_PASSWORD, name, `${name}-key.pem`]);
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}-key.pem`);
  const cert = fs.readFileSync(certFile, 'utf8');
  const subject = new X509Certificate(cert).subject.split('\n').toReversed().join(',');
  return { subject, cert, key: fs.readFileSync(keyFile, 'utf8'), certFile, keyFile, keyStore: path.join(dir, store) };
}

/** Writes a key store entry's private key as PEM (keytool cannot). Args: store, password, alias, out file. */
const PEM_KEY_JAVA = `import java.io.FileInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.util.Base64;

public class PemKey {
  public static void main(String[] args) throws Exception {
    KeyStore store = KeyStore.getInstance("PKCS12");
    try (FileInputStream in = new FileInputStream(args[0])) {
      store.load(in, args[1].toCharArray());
    }
    Key key = store.getKey(args[2], args[1].toCharArray());
    String body = Base64.getMimeEncoder(64, "\\n".getBytes()).encodeToString(key.getEncoded());
    Files.writeString(Path.of(args[3]), "-----BEGIN PRIVATE KEY-----\\n" + body + "\\n-----END PRIVATE KEY-----\\n");
  }
}
`;

async function javaRuntime(): Promise<JavaRuntime> {
  return (await runtimeFor('java')) as JavaRuntime;
}

async function keytool(dir: string, args: string[]): Promise<void> {
  const { java } = await javaRuntime();
  const bin = path.join(path.dirname(java), 'keytool');
  const tool = fs.existsSync(bin) ? bin : 'keytool';
  await run(tool, ['-J-XX:TieredStopAtLevel=1', '-storetype', 'PKCS12', '-storepass', TLS_PASSWORD, ...args], dir);
}

async function runJava(dir: string, args: string[]): Promise<void> {
  const { java: bin } = await javaRuntime();
  await run(bin, ['-XX:TieredStopAtLevel=1', ...args], dir);
}

function run(file: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error)
        reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${stderr || stdout || error.message}`));
      else resolve();
    });
  });
}

// ---- the server side ----

/** How a test server serves TLS. */
export interface ZkServerTlsOptions {
  /** ZooKeeper's ssl.clientAuth: `none` (default), `want`, or `need` (mutual TLS: clients must present a certificate the CA signed). */
  clientAuth?: 'none' | 'want' | 'need';
  /** ZooKeeper's x509 auth provider: a client certificate's subject is the session's identity (`x509:CN=...`). Default: on unless clientAuth is `none`. */
  x509Auth?: boolean;
  /** The server's certificate (default: the kit's, CN=zookeeper for 127.0.0.1, valid now). */
  certificate?: TlsCertificate;
  /**
   * Also a plaintext clientPort (Netty serves both), e.g. to compare TLS with plaintext on one
   * server (the benchmark); its address is the server's `plaintextConnectString`. Default: TLS only.
   */
  alsoPlaintext?: boolean;
}

/** What a TLS test server offers its clients. */
export interface ZkServerTls {
  readonly clientAuth: 'none' | 'want' | 'need';
  /** A plaintext clientPort too (see {@link ZkServerTlsOptions.alsoPlaintext}). */
  readonly alsoPlaintext: boolean;
  readonly x509Auth: boolean;
  /** The test CA (PEM): it signed the server's certificate, and the server trusts client certificates it signed. */
  readonly ca: string;
  /** The server's certificate. */
  readonly server: TlsCertificate;
  /** A client certificate the test CA signed (CN=zk-lock-test-client). */
  readonly client: TlsCertificate;
  /** `{ ca, cert, key }`: the `tls` option of a client of this server (mutual TLS ready). */
  readonly clientOptions: { ca: string; cert: string; key: string };
}

/** The server's TLS settings, from the options and the process's material. */
export async function serverTls(options: true | ZkServerTlsOptions): Promise<ZkServerTls> {
  const given = options === true ? {} : options;
  const made = await testTlsMaterial();
  const clientAuth = given.clientAuth ?? 'none';
  return Object.freeze({
    clientAuth,
    alsoPlaintext: given.alsoPlaintext ?? false,
    x509Auth: given.x509Auth ?? clientAuth !== 'none',
    ca: made.ca,
    server: given.certificate ?? made.server,
    client: made.client,
    clientOptions: Object.freeze({ ca: made.ca, cert: made.client.cert, key: made.client.key }),
  });
}

/** The zoo.cfg lines of a server with a secureClientPort (on `host`:`port`), and a clientPort at `plainPort` if given. */
export async function secureConfig(
  tls: ZkServerTls,
  host: string,
  port: number,
  plainPort?: number,
): Promise<string[]> {
  const { trustStore } = await testTlsMaterial();
  return [
    ...(plainPort === undefined ? [] : [`clientPort=${plainPort}`, `clientPortAddress=${host}`]),
    'serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory',
    `secureClientPort=${port}`,
    `secureClientPortAddress=${host}`,
    `ssl.keyStore.location=${tls.server.keyStore}`,
    `ssl.keyStore.password=${TLS_PASSWORD}`,
    'ssl.keyStore.type=PKCS12',
    `ssl.trustStore.location=${trustStore}`,
    `ssl.trustStore.password=${TLS_PASSWORD}`,
    'ssl.trustStore.type=PKCS12',
    `ssl.clientAuth=${tls.clientAuth}`,
    ...(tls.x509Auth ? ['authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider'] : []),
  ];
}

/**
 * Debian's zookeeper.jar lists the Netty jars it needs for plain TCP only; the Netty connection
 * factory (the only one that serves TLS) needs netty-codec and netty-resolver too.
 */
export function withNettyJars(classpath: string): string {
  if (!classpath.includes('/usr/share/java/zookeeper.jar')) return classpath; // an Apache release has them all
  const jars = ['netty-codec.jar', 'netty-resolver.jar']
    .map((jar) => path.join('/usr/share/java', jar))
    .filter((jar) => fs.existsSync(jar));
  return [classpath, ...jars].join(path.delimiter);
}

/** A four letter word over TLS (with the harness's client certificate), resolving with the answer. */
export function tlsFourLetter(
  target: { host: string; port: number; tls: ZkServerTls },
  cmd: string,
  timeoutMs = 5_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // The harness's certificate; the server's is not checked (a test may give it an expired one).
    const { cert, key } = target.tls.clientOptions;
    const socket = tlsConnect({ host: target.host, port: target.port, cert, key, rejectUnauthorized: false });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(
        new Error(`fourLetter ${cmd} ${target.host}:${target.port} (TLS): no answer within ${timeoutMs} ms`),
      ),
    );
    socket.on('secureConnect', () => socket.end(cmd));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}
