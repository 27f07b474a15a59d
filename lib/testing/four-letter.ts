/**
 * ZooKeeper "four letter word" admin commands over a raw TCP connection
 * (the servers started by `startZooKeeper` / `startEnsemble` whitelist all of them).
 */
import * as net from 'node:net';

export type FourLetterTarget = { host: string; port: number } | string;

function parseTarget(target: FourLetterTarget): { host: string; port: number } {
  if (typeof target !== 'string') return target;
  const first = target.split(',')[0].split('/')[0]; // tolerate a full connect string
  const colon = first.lastIndexOf(':');
  if (colon < 0) throw new Error(`fourLetter: bad target '${target}', expected host:port`);
  return { host: first.slice(0, colon), port: Number(first.slice(colon + 1)) };
}

/**
 * Per 'host:port', the packets packetsReceived() leaves out: the server counts every four letter
 * word as a received packet, so each answered one adds 1 (on top of the baseline, see below).
 */
const notFromClients = new Map<string, number>();

/** Sends `cmd` and resolves with the whole answer; also returns our local port (to recognise ourselves in `cons`). */
function ask(target: FourLetterTarget, cmd: string, timeoutMs: number): Promise<{ text: string; localPort: number }> {
  const { host, port } = parseTarget(target);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let localPort = 0;
    const socket = net.connect({ host, port });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`fourLetter ${cmd} ${host}:${port}: no answer within ${timeoutMs} ms`)),
    );
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      socket.end(cmd);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (hadError) return;
      notFromClients.set(`${host}:${port}`, (notFromClients.get(`${host}:${port}`) ?? 0) + 1);
      resolve({ text: Buffer.concat(chunks).toString('utf8'), localPort });
    });
  });
}

/** Sends a four letter word (`srvr`, `mntr`, `cons`, `wchs`...) and resolves with the raw answer. */
export async function fourLetter(target: FourLetterTarget, cmd: string, timeoutMs = 5000): Promise<string> {
  return (await ask(target, cmd, timeoutMs)).text;
}

/** `mntr` as a record of its `key\tvalue` lines (`zk_server_state`, `zk_znode_count`...). */
export async function mntr(target: FourLetterTarget): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await fourLetter(target, 'mntr')).split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) out[line.slice(0, tab)] = line.slice(tab + 1).trim();
  }
  return out;
}

/** Total number of watches on this server (`wchs` "Total watches:N"). */
export async function watchCount(target: FourLetterTarget): Promise<number> {
  const text = await fourLetter(target, 'wchs');
  const m = /Total watches:\s*(\d+)/.exec(text);
  if (!m) throw new Error(`wchs: unexpected answer: ${text}`);
  return Number(m[1]);
}

/** Watched paths (`wchp`): path -> number of sessions watching it. */
export async function watchesByPath(target: FourLetterTarget): Promise<Map<string, number>> {
  const watches = new Map<string, number>();
  let path: string | undefined;
  for (const line of (await fourLetter(target, 'wchp')).split('\n')) {
    if (line.startsWith('/')) {
      path = line.trim();
      watches.set(path, 0);
    } else if (path !== undefined && /^\s+0x[0-9a-f]+/i.test(line)) {
      watches.set(path, watches.get(path)! + 1);
    }
  }
  return watches;
}

/** Client connections open on this server (`cons`), not counting the one asking. */
export async function connectionCount(target: FourLetterTarget): Promise<number> {
  const { text, localPort } = await ask(target, 'cons', 5000);
  return text
    .split('\n')
    .filter((line) => /^\s*\/\S+:\d+\[/.test(line))
    .filter((line) => !line.includes(`:${localPort}[`)).length;
}

async function rawPacketsReceived(target: FourLetterTarget): Promise<number> {
  const value = (await mntr(target))['zk_packets_received'];
  if (value === undefined) throw new Error('mntr: no zk_packets_received');
  return Number(value);
}

/**
 * Packets received from clients (requests and pings) since the baseline: `mntr` zk_packets_received
 * minus the baseline and minus the four letter words this process sent since (this one included).
 * The harness takes the baseline when a server starts serving. A quorum member's counter restarts
 * when its role changes (re-election): compare values taken while the ensemble is stable.
 */
export async function packetsReceived(target: FourLetterTarget): Promise<number> {
  const { host, port } = parseTarget(target);
  const raw = await rawPacketsReceived(target);
  return raw - (notFromClients.get(`${host}:${port}`) ?? 0);
}

/** Makes packetsReceived(target) count from zero from now on. */
export async function resetPacketsReceived(target: FourLetterTarget): Promise<void> {
  const { host, port } = parseTarget(target);
  notFromClients.set(`${host}:${port}`, await rawPacketsReceived(target)); // (that mntr included)
}
