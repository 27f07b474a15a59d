/**
 * TLS for node-zookeeper-client, which opens plain TCP sockets only (`net.connect` in its
 * ConnectionManager.connect). `connectOverTls` replaces that one method on the client's instance
 * with one that opens a TLS socket instead and binds the same handlers, with one difference: the
 * client's "connected" handler (which sends the connect request, and which Wire, ConnectAttempts
 * and close() hook on the instance) runs on `secureConnect`, when the handshake is done and the
 * server's certificate checked; the client's connect timer thus covers the TCP connect and the
 * handshake. Everything else (the connect request, pings, the handshake timer of wire.ts, the
 * presumed expiry) runs over the TLS socket unchanged.
 *
 * Also here: how a TLS failure reads (the socket error's code in words), whether a server speaks
 * TLS (to explain a plaintext client's closed connections), and what the connection shows of its
 * TLS session (never key material).
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import type { ResolvedTls, ZkTlsOptions } from '../tls-options.js';
import type { ZkTransport } from '../zk-port.js';
import type { RawConnectionManager } from './raw-client.js';

interface ServerAddress {
  host: string;
  port: number | string;
}
/** The connection manager's parts that open a socket (ConnectionManager.connect of 1.1.3). */
type ConnectHooks = RawConnectionManager & {
  connectTimeout: number;
  setState(state: number): void;
  findNextServer(callback: (server: ServerAddress) => void): void;
  onSocketError(error: Error): void;
  onSocketConnectTimeout(): void;
  onSocketDrain(): void;
};

/** The client's CONNECTING state (ConnectionManager.STATES). */
const CONNECTING = 1;

/** The code of the error an attempt fails with when the `tls` option's function throws or returns bad options. */
export const TLS_OPTIONS_FAILED = 'ZK_LOCK_TLS_OPTIONS';

/**
 * Makes the client open TLS sockets with the options `tls` gives at each attempt. `closed` says
 * the adapter was closed meanwhile (a function's options may arrive after that): then nothing
 * is opened.
 */
export function connectOverTls(
  raw: RawConnectionManager,
  tls: ResolvedTls,
  closed: () => boolean,
  opening: (options: ZkTlsOptions) => void,
): void {
  const manager = raw as ConnectHooks;
  manager.connect = function connect(this: ConnectHooks) {
    manager.setState(CONNECTING);
    manager.findNextServer((server) => {
      let options: ZkTlsOptions | Promise<ZkTlsOptions>;
      try {
        options = tls();
      } catch (error) {
        failAttempt(manager, error, closed);
        return;
      }
      if (!(options instanceof Promise)) {
        opening(options);
        open(manager, server, options);
        return;
      }
      // A function that never answers (a secret store that hangs) must not stall the reconnect
      // loop: after the attempt's connect timeout, the attempt fails and a later answer is dropped.
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        failAttempt(manager, new Error(`no answer within ${manager.connectTimeout} ms`), closed);
      }, manager.connectTimeout);
      timer.unref(); // (after close() it finds nothing to do)
      const settle = (then: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!closed()) then();
      };
      options.then(
        (ready) =>
          settle(() => {
            opening(ready);
            open(manager, server, ready);
          }),
        (error: unknown) => settle(() => failAttempt(manager, error, closed)),
      );
    });
  };
}

/** As the client's own connect callback, over TLS (handlers looked up now: the hooks on the instance count). */
function open(manager: ConnectHooks, server: ServerAddress, options: ZkTlsOptions): void {
  const socket = tlsConnect({ ...options, host: server.host, port: Number(server.port) });
  manager.socket = socket;
  manager.connectTimeoutHandler = setTimeout(manager.onSocketConnectTimeout.bind(manager), manager.connectTimeout);
  socket.setNoDelay();
  socket.on('secureConnect', manager.onSocketConnected.bind(manager));
  socket.on('data', manager.onSocketData.bind(manager));
  socket.on('drain', manager.onSocketDrain.bind(manager));
  socket.on('close', manager.onSocketClosed.bind(manager));
  socket.on('error', manager.onSocketError.bind(manager));
}

/**
 * No socket for this attempt (the `tls` function failed): reported as a socket error, then the
 * client goes on as after a closed socket (the next server). On the next turn of the event loop:
 * the client moves to the next server only once the callback that got this one has returned.
 */
function failAttempt(manager: ConnectHooks, error: unknown, closed: () => boolean): void {
  const message = error instanceof Error ? error.message : String(error);
  setImmediate(() => {
    if (closed()) return;
    manager.onSocketError(Object.assign(new Error(message), { code: TLS_OPTIONS_FAILED }));
    manager.onSocketClosed(true);
  });
}

// ---- how it failed ----

/** OpenSSL's certificate verification codes (Node's error.code) for a server certificate that does not verify. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
]);

/**
 * A TLS failure of a connection attempt, in words naming the fix, prefixed `TLS: `; undefined
 * when `error` is no TLS failure. `own` is the client certificate sent, if any (to tell an
 * expired one apart when the server refuses it).
 */
export function describeTlsError(
  error: NodeJS.ErrnoException,
  tls: { own?: X509Certificate | undefined; sentCertificate: boolean } | undefined,
): string | undefined {
  const code = error.code ?? '';
  const what = `${firstLine(error.message)} (${code})`;
  if (code === TLS_OPTIONS_FAILED) return `TLS: the tls option's function failed: ${firstLine(error.message)}`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `TLS: the server's certificate is not valid now: ${what}; the server needs a renewed certificate`;
  }
  if (UNTRUSTED.has(code)) {
    return `TLS: the server's certificate does not verify: ${what}; tls.ca must hold the CA that signed the servers' certificates`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') {
    return `TLS: the server's certificate is not for this host: ${what}; connect by a name or address the certificate lists, or set tls.servername`;
  }
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$/.exec(code)?.[1];
  if (alert) return describeAlert(alert.toLowerCase().replaceAll('_', ' '), tls);
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return `TLS: the server does not speak TLS on this port: ${what}; use its secureClientPort, or no tls option for its clientPort`;
  }
  if (tls && code === 'ECONNRESET' && /before secure TLS connection/i.test(error.message)) {
    return 'TLS: the server closed the connection during the TLS handshake: it does not speak TLS on this port (a plaintext clientPort?); use its secureClientPort, or no tls option for its clientPort';
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `TLS: the handshake failed: ${what}`;
  return undefined;
}

/** The server ended the handshake with a TLS alert (`alert`: its name in words). */
function describeAlert(alert: string, tls: { own?: X509Certificate; sentCertificate: boolean } | undefined): string {
  const said = `the server refused the TLS handshake (alert: ${alert})`;
  if (/certificate|unknown ca|access denied/.test(alert)) {
    if (!tls?.sentCertificate) {
      return `TLS: ${said}: it requires a client certificate (ssl.clientAuth=need) and we sent none; set tls.cert and tls.key`;
    }
    const own = tls.own;
    if (own && Date.parse(own.validTo) < Date.now()) {
      return `TLS: ${said}: our client certificate (${rfc2253(own.subject)}) expired on ${new Date(own.validTo).toISOString()}; renew tls.cert`;
    }
    if (own && Date.parse(own.validFrom) > Date.now()) {
      return `TLS: ${said}: our client certificate (${rfc2253(own.subject)}) is not valid before ${new Date(own.validFrom).toISOString()}`;
    }
    const whose = own ? ` (${rfc2253(own.subject)}, issued by ${rfc2253(own.issuer)})` : '';
    return `TLS: ${said}: it does not accept our client certificate${whose}: is it signed by a CA in the servers' trust store?`;
  }
  if (/protocol version/.test(alert)) {
    return `TLS: ${said}: no TLS version in common; check tls.minVersion and tls.maxVersion against the servers' ssl.protocol`;
  }
  return `TLS: ${said}`;
}

/** The client certificate in TLS options, parsed (undefined when there is none, or a PKCS#12 one). */
export function ownCertificate(options: ZkTlsOptions): X509Certificate | undefined {
  const cert = Array.isArray(options.cert) ? options.cert[0] : options.cert;
  if (cert === undefined) return undefined;
  try {
    return new X509Certificate(cert);
  } catch {
    return undefined;
  }
}

/**
 * Whether `host:port` answers a TLS handshake (a server certificate, or a TLS alert such as
 * "certificate required"): to tell a plaintext client why a server closes its connections.
 * Resolves false on anything else, or after `timeout` ms. Checks nothing of the certificate.
 */
export function speaksTls(host: string, port: number, timeout: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, servername: isIP(host) ? undefined : host });
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeout);
    timer.unref();
    socket.on('secureConnect', () => done(true));
    socket.on('error', (error: NodeJS.ErrnoException) => done(/^ERR_SSL_\w*ALERT/.test(error.code ?? '')));
    socket.on('close', () => done(false));
  });
}

// ---- what the connection shows ----

/** Per socket (a connection's TLS session does not change): what it shows. */
const shown = new WeakMap<TLSSocket, ZkTransport>();

/** What a connected socket shows of its encryption: TLS protocol and cipher, the certificates' subjects; never keys. */
export function transportOf(socket: unknown): ZkTransport {
  if (!(socket instanceof TLSSocket)) return { encrypted: false };
  let transport = shown.get(socket);
  if (!transport) {
    transport = describeSession(socket);
    shown.set(socket, transport);
  }
  return { ...transport };
}

function describeSession(socket: TLSSocket): ZkTransport {
  const transport: ZkTransport = { encrypted: true };
  const protocol = socket.getProtocol();
  if (protocol) transport.protocol = protocol;
  const cipher = socket.getCipher()?.name;
  if (cipher) transport.cipher = cipher;
  // (Node 20's getPeerX509Certificate() leaves the socket without its peer certificate for any
  // later call: parse the raw one instead.)
  const raw = socket.getPeerCertificate().raw as Buffer | undefined;
  if (raw) {
    const peer = new X509Certificate(raw);
    transport.peer = rfc2253(peer.subject);
    transport.peerIssuer = rfc2253(peer.issuer);
    transport.peerValidTo = new Date(peer.validTo).toISOString();
  }
  const own = socket.getCertificate();
  const ownRaw = own && 'raw' in own ? own.raw : undefined;
  if (ownRaw) transport.identity = `x509:${rfc2253(new X509Certificate(ownRaw).subject)}`;
  return transport;
}

/**
 * A distinguished name as Java's X500Principal.getName() writes it (RFC 2253), which is the id
 * ZooKeeper's x509 provider gives a session: most specific first, comma-separated. Node lists
 * the relative names one per line, in the certificate's order (least specific first), escaped
 * as RFC 2253 wants.
 */
export function rfc2253(name: string): string {
  return name
    .split('\n')
    .filter((part) => part.length > 0)
    .toReversed()
    .join(',');
}

function firstLine(text: string): string {
  return text.split('\n')[0].trim();
}
