// Proof that a rotation took: each endpoint serves the certificate now on disk,
// and the restarted components answer their health probes — checked where each
// component really listens, the way Rancher's planner probes a node.
import { connect, checkServerIdentity } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { X509Certificate } from 'node:crypto';
import type { HealthProbe, ListenAddress, ServedPort } from '../distributions/types.js';
import { serialOf } from '../pki/certfile.js';
import { signedByOnHost } from './issuer.js';
import type { HostRoot } from './root.js';

// Where the agent reaches a node's listeners. On the node itself (the offline
// CLI, or the agent in a hostNetwork pod) the loopback is 127.0.0.1.
export interface NodeAddresses {
  readonly loopback: string;
  // The node's own addresses, tried in order for a component bound to the node IP
  // (RKE2's etcd peer port): the first that accepts the connection is the one.
  readonly nodeIPs: readonly string[];
}

// What a client on the host dials for a loopback listener, and so the name its
// serving certificate is checked for (RKE2 and RKE put 127.0.0.1 in the SANs).
const LOOPBACK_IDENTITY = '127.0.0.1';

export function nodeAddresses(o: { loopback?: string | undefined; nodeIP?: string | undefined }): NodeAddresses {
  return { loopback: o.loopback ?? LOOPBACK_IDENTITY, nodeIPs: o.nodeIP ? [o.nodeIP] : hostAddresses() };
}

// The host's own addresses, IPv4 first: what the node IP is when nobody said.
export function hostAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((a) => !a.internal);
  return [...all.filter((a) => a.family === 'IPv4'), ...all.filter((a) => a.family === 'IPv6' && !a.address.startsWith('fe80:'))].map((a) => a.address);
}

// Connection refused or unreachable: nothing listens on that address; try the next.
const NOT_LISTENING = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL/;

async function onEachAddress<T>(addrs: NodeAddresses, on: ListenAddress, what: string, f: (address: string) => Promise<T>): Promise<T> {
  if (on === 'loopback') return f(addrs.loopback);
  if (addrs.nodeIPs.length === 0) throw new Error(`${what}: this host has no address besides loopback; pass the node IP`);
  let last: Error | undefined;
  for (const address of addrs.nodeIPs) {
    try {
      return await f(address);
    } catch (e) {
      last = e as Error;
      if (!NOT_LISTENING.test(last.message)) throw last;
    }
  }
  throw last!;
}

// The serial an endpoint serves. With `trust`, the served chain must also verify
// against that CA for the name a client dials (127.0.0.1 on loopback, the node
// IP otherwise): a renewed certificate the component's own clients would refuse
// (e.g. an etcd peer certificate without the node IP) is not "served" at all.
export async function servedSerialOn(
  addrs: NodeAddresses,
  served: ServedPort,
  trust?: { readonly caFile: string; readonly ca: Buffer },
  timeoutMs = 3000,
): Promise<{ address: string; serial: string }> {
  return onEachAddress(addrs, served.on, `port ${served.port}`, async (address) => {
    const identity = served.on === 'loopback' ? LOOPBACK_IDENTITY : address;
    return { address, serial: await servedSerial(address, served.port, timeoutMs, trust && { ...trust, identity }) };
  });
}

// The endpoint serves a certificate, but clients would refuse it (chain or name).
// Carries the serial so the caller can tell "still the old one" from "the new
// one, and it is wrong".
export class ServedCertificateError extends Error {
  constructor(
    message: string,
    readonly serial: string,
  ) {
    super(message);
    this.name = 'ServedCertificateError';
  }
}

export async function servedSerial(
  address: string,
  port: number,
  timeoutMs = 3000,
  // `identity` is also sent as the TLS server name when it is a DNS name, as an API
  // server calling a webhook's Service does (a server may pick its certificate by it).
  trust?: { readonly caFile: string; readonly ca: Buffer; readonly identity: string },
): Promise<string> {
  const { peer, chainError } = await handshake(address, port, timeoutMs, trust?.ca, trust && !isIP(trust.identity) ? trust.identity : undefined);
  // The chain is judged by OpenSSL (authorizationError); the name separately here,
  // against the identity a client of this listener dials rather than `address`.
  const nameError = trust && !(isIP(trust.identity) ? peer.checkIP(trust.identity) : peer.checkHost(trust.identity)) ? new Error(`no subjectAltName matches (${peer.subjectAltName ?? 'none'})`) : undefined;
  const serial = serialOf(peer);
  if (trust && chainError) throw new ServedCertificateError(`${address}:${port} serves serial ${serial}, which does not verify against ${trust.caFile}: ${String(chainError)}`, serial);
  if (nameError) throw new ServedCertificateError(`${address}:${port} serves serial ${serial}, which is not valid for ${trust!.identity}: ${nameError.message}`, serial);
  return serial;
}

/** The leaf certificate an endpoint presents, whoever signed it (the inventory's read of what is really served). */
export async function servedCertificate(addrs: NodeAddresses, served: ServedPort, timeoutMs = 3000): Promise<{ address: string; certificate: X509Certificate }> {
  return onEachAddress(addrs, served.on, `port ${served.port}`, async (address) => ({ address, certificate: (await handshake(address, served.port, timeoutMs)).peer }));
}

function handshake(address: string, port: number, timeoutMs: number, ca?: Buffer, servername?: string): Promise<{ peer: X509Certificate; chainError: Error | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, rejectUnauthorized: false, timeout: timeoutMs, checkServerIdentity: () => undefined, ...(ca ? { ca } : {}), ...(servername ? { servername } : {}) }, () => {
      const peer = socket.getPeerX509Certificate();
      const chainError = socket.authorizationError;
      socket.destroy();
      if (!peer) return reject(new Error(`${address}:${port} presented no certificate`));
      resolve({ peer, chainError });
    });
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`${address}:${port}: TLS handshake timed out`));
    });
    socket.on('error', (e) => reject(new Error(`${address}:${port}: ${e.message}`)));
  });
}

export async function probe(p: HealthProbe, addrs: NodeAddresses, host: HostRoot, timeoutMs = 3000): Promise<void> {
  const { caFile, ...tlsOpts } = p.scheme === 'https' ? await probeTls(p, host) : { caFile: undefined };
  await onEachAddress(addrs, p.on, p.component, (address) => {
    const url = `${p.scheme}://${address}:${p.port}${p.path}`;
    const identity = p.on === 'loopback' ? LOOPBACK_IDENTITY : address;
    return new Promise<void>((resolve, reject) => {
      const opts = { host: address, port: p.port, path: p.path, method: 'GET', timeout: timeoutMs };
      const req =
        p.scheme === 'https'
          ? httpsRequest({ ...opts, ...tlsOpts, checkServerIdentity: (_name: string, cert) => checkServerIdentity(identity, cert) })
          : httpRequest(opts);
      req.on('response', (res) => {
        res.resume();
        if (res.statusCode === 200) resolve();
        else reject(new Error(`${p.component} ${url} answered ${res.statusCode}${res.statusCode === 401 || res.statusCode === 403 ? ` (as ${p.clientCert ? p.clientCert.cert : 'anonymous'})` : ''}`));
      });
      req.on('timeout', () => req.destroy(new Error(`${p.component} ${url} timed out`)));
      req.on('error', (e) => {
        const untrusted = /certificate|self.signed|issuer|altnames|Hostname\/IP/i.test(e.message) && caFile;
        reject(new Error(`${p.component} ${url}: ${e.message}${untrusted ? ` (verified against ${caFile})` : ''}`));
      });
      req.end();
    });
  });
}

// The probe trusts only the CA that signs the component's serving certificate
// and presents the client pair the component requires. For a cert-dir pair that
// is the CA that signed the file on disk: server-ca when k3s made it (k3s PR
// #12285), else the self-signed file itself, as Rancher's probe does.
export async function probeTls(
  p: HealthProbe,
  host: HostRoot,
): Promise<{ caFile?: string; ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean }> {
  const client = p.clientCert ? { cert: await host.readFile(p.clientCert.cert), key: await host.readFile(p.clientCert.key) } : {};
  if (!p.ca || (p.caOptional && !(await host.exists(p.ca)))) return { ...client, rejectUnauthorized: false };
  let caFile = p.ca;
  if (p.caWhenSignedBy && (await host.exists(p.caWhenSignedBy))) {
    const signedBy = await signedByOnHost(host, p.ca, 'pem', p.caWhenSignedBy).catch(() => undefined);
    if (signedBy && signedBy !== 'self-signed') caFile = signedBy.caFile;
  }
  return { ...client, caFile, ca: await host.readFile(caFile), rejectUnauthorized: true };
}

// Retries `check` until it passes or the deadline; components take a while to come
// back. `isFinal` marks a failure that waiting cannot change: it is thrown at once.
export async function eventually<T>(check: () => Promise<T>, deadlineMs: number, intervalMs = 250, isFinal: (e: unknown) => boolean = () => false): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (isFinal(e) || Date.now() + intervalMs > end) throw e;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

export function leafSerialOfPem(pem: string): string {
  return serialOf(new X509Certificate(pem));
}
