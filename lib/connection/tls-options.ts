/**
 * The `tls` option: TLS to ZooKeeper's `secureClientPort` (ZooKeeper 3.5+, Netty connection
 * factory). Its rule (checked once at start-up, and for a function's result at each connection),
 * and the start-up warnings about what crosses the network in clear.
 */
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';

/**
 * Node's TLS options that zk-lock passes to `tls.connect` for every connection (see Node's
 * `tls.connect` and `tls.createSecureContext`). Host and port come from `connectionString`.
 * `rejectUnauthorized` defaults to true here whatever NODE_TLS_REJECT_UNAUTHORIZED says.
 */
export type ZkTlsOptions = Pick<
  ConnectionOptions,
  | 'ca'
  | 'cert'
  | 'key'
  | 'passphrase'
  | 'pfx'
  | 'servername'
  | 'minVersion'
  | 'maxVersion'
  | 'rejectUnauthorized'
  | 'checkServerIdentity'
  | 'ciphers'
  | 'ecdhCurve'
  | 'crl'
>;

/** What the `tls` option takes: on with Node's defaults, options, or a function called at each connection. */
export type ZkTlsOption = boolean | ZkTlsOptions | (() => ZkTlsOptions | Promise<ZkTlsOptions>);

/**
 * The `tls` option after its check: a function that gives the TLS options of the next connection
 * (the given object, or what the given function returns now, checked). A function, so that the
 * resolved options are valid options too.
 */
export type ResolvedTls = (() => ZkTlsOptions | Promise<ZkTlsOptions>) & {
  /** A function was given: it is called, and its result checked, at each connection. */
  readonly dynamic: boolean;
  /** `rejectUnauthorized: false` was given (a static object only): certificates are not checked. */
  readonly unverified: boolean;
};

const KEYS: ReadonlySet<string> = new Set([
  'ca',
  'cert',
  'key',
  'passphrase',
  'pfx',
  'servername',
  'minVersion',
  'maxVersion',
  'rejectUnauthorized',
  'checkServerIdentity',
  'ciphers',
  'ecdhCurve',
  'crl',
]);
const VERSIONS: ReadonlySet<unknown> = new Set(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
/** Keys whose values are never echoed in an error (key material). */
const SECRET: ReadonlySet<string> = new Set(['key', 'passphrase', 'pfx']);

/** The rule of the `tls` option: off (undefined, false), `true`, Node's TLS options, or a function returning them. */
export function resolveTls(value: unknown, option: string): ResolvedTls | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return resolved(() => ({ rejectUnauthorized: true }), false, false);
  if (typeof value === 'function') {
    const source = value as () => unknown;
    const next = (): ZkTlsOptions | Promise<ZkTlsOptions> => {
      const given = source();
      return isPromise(given)
        ? Promise.resolve(given).then((options) => checkTlsOptions(options, `${option}()`))
        : checkTlsOptions(given, `${option}()`);
    };
    return resolved(next, true, false);
  }
  const options = checkTlsOptions(value, option);
  return resolved(() => options, false, options.rejectUnauthorized === false);
}

function resolved(
  next: () => ZkTlsOptions | Promise<ZkTlsOptions>,
  dynamic: boolean,
  unverified: boolean,
): ResolvedTls {
  return Object.freeze(Object.assign(next, { dynamic, unverified }));
}

/**
 * Checks TLS options (keys, types, and that Node can build a context from them: a PEM that does
 * not parse, a key that does not match the certificate or a wrong passphrase fail here, naming
 * the option, never echoing key material). Returns a frozen copy with `rejectUnauthorized` set.
 */
export function checkTlsOptions(value: unknown, option: string): ZkTlsOptions {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionsError(
      option,
      value,
      'must be true, Node TLS options ({ ca, cert, key, passphrase, servername, minVersion, rejectUnauthorized... }) or a function returning them',
    );
  }
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!KEYS.has(key)) {
      throw new InvalidOptionsError(
        `${option}.${key}`,
        SECRET.has(key) ? '<hidden>' : given[key],
        `is not a TLS option nestjs-zk-lock passes on (${[...KEYS].join(', ')}); host and port come from connectionString`,
      );
    }
  }
  for (const key of ['ca', 'cert', 'key', 'pfx', 'crl']) checkMaterial(given[key], `${option}.${key}`, SECRET.has(key));
  checkType(given, option, 'passphrase', 'string', true);
  checkType(given, option, 'servername', 'string', false);
  checkType(given, option, 'ciphers', 'string', false);
  checkType(given, option, 'ecdhCurve', 'string', false);
  checkType(given, option, 'rejectUnauthorized', 'boolean', false);
  checkType(given, option, 'checkServerIdentity', 'function', false);
  for (const key of ['minVersion', 'maxVersion']) {
    if (given[key] !== undefined && !VERSIONS.has(given[key])) {
      throw new InvalidOptionsError(`${option}.${key}`, given[key], 'must be one of "TLSv1.2", "TLSv1.3" (or older)');
    }
  }
  if ((given['cert'] === undefined) !== (given['key'] === undefined)) {
    throw new InvalidOptionsError(
      option,
      '<hidden>',
      'has only one of cert and key: a client certificate needs both (its private key in key)',
    );
  }
  const options = { ...given, rejectUnauthorized: given['rejectUnauthorized'] ?? true } as ZkTlsOptions;
  try {
    createSecureContext(options);
  } catch (error) {
    throw new InvalidOptionsError(
      option,
      '<hidden>',
      `cannot be used: ${(error as Error).message.split('\n')[0]} (check the PEM files, that the key is the certificate's and the passphrase)`,
    );
  }
  return Object.freeze(options);
}

/** ca, cert, key, crl: PEM text (a string or Buffer) or an array of them; pfx: PKCS#12 bytes. */
function checkMaterial(value: unknown, option: string, secret: boolean): void {
  if (value === undefined) return;
  const pem = !option.endsWith('.pfx');
  const one = (item: unknown): boolean => {
    if (item !== null && typeof item === 'object' && !Buffer.isBuffer(item)) return 'pem' in item || 'buf' in item;
    if (typeof item !== 'string' && !Buffer.isBuffer(item)) return false;
    if (pem && !item.includes('-----BEGIN')) {
      throw new InvalidOptionsError(
        option,
        secret ? '<hidden>' : typeof item === 'string' && item.length < 200 ? item : '<not PEM>',
        "is not PEM text (no -----BEGIN line): pass the file's content, e.g. fs.readFileSync(path), not its path",
      );
    }
    return true;
  };
  if (Array.isArray(value) ? value.every(one) : one(value)) return;
  throw new InvalidOptionsError(
    option,
    secret ? '<hidden>' : value,
    pem
      ? 'must be PEM text (a string or Buffer, e.g. fs.readFileSync(file)) or an array of them'
      : 'must be PKCS#12 bytes (a Buffer, e.g. fs.readFileSync(file)) or an array of them',
  );
}

function checkType(given: Record<string, unknown>, option: string, key: string, type: string, secret: boolean): void {
  if (given[key] === undefined || typeof given[key] === type) return;
  throw new InvalidOptionsError(`${option}.${key}`, secret ? '<hidden>' : given[key], `must be a ${type}`);
}

function isPromise(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** A host that is this machine (traffic to it does not cross a network). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1';
}

/**
 * Start-up warnings about what the connection would expose: digest credentials (`auth`, sent
 * as `user:password`) without TLS to a server that is not on this machine; TLS whose server
 * certificates are not checked.
 */
export function cleartextWarnings(options: {
  auth: readonly unknown[];
  tls: ResolvedTls | undefined;
  servers: readonly { host: string; port: number }[];
}): string[] {
  const warnings: string[] = [];
  const remote = options.servers.filter((server) => !isLoopback(server.host));
  if (options.auth.length > 0 && !options.tls && remote.length > 0) {
    const where = remote.map((server) => `${server.host}:${server.port}`).join(', ');
    warnings.push(
      `The auth option sends digest credentials (user:password) to ZooKeeper in clear text over the network (${where}): ` +
        'anyone on the path can read them. Set the tls option (the servers must serve secureClientPort), ' +
        'or use mutual TLS with x509 ACLs instead of passwords.',
    );
  }
  if (options.tls?.unverified) {
    warnings.push(
      "tls.rejectUnauthorized is false: the servers' certificates are not checked, so anyone on the path can " +
        'pose as ZooKeeper. Give tls.ca (the CA that signed them) instead.',
    );
  }
  return warnings;
}
