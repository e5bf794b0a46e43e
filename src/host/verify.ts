// Proof that a rotation took: each endpoint serves the certificate now on disk,
// and the restarted components answer their health probes.
import { connect } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { HealthProbe } from '../distributions/types.js';
import { serialOf } from '../pki/certfile.js';
import type { HostRoot } from './root.js';

export async function servedSerial(address: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const peer = socket.getPeerX509Certificate();
      socket.destroy();
      if (!peer) reject(new Error(`${address}:${port} presented no certificate`));
      else resolve(serialOf(peer));
    });
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`${address}:${port}: TLS handshake timed out`));
    });
    socket.on('error', (e) => reject(new Error(`${address}:${port}: ${e.message}`)));
  });
}

export async function probe(p: HealthProbe, address: string, host: HostRoot, timeoutMs = 3000): Promise<void> {
  const tlsOpts = p.clientCert
    ? { cert: await host.readFile(p.clientCert.cert), key: await host.readFile(p.clientCert.key) }
    : {};
  await new Promise<void>((resolve, reject) => {
    const opts = { host: address, port: p.port, path: p.path, method: 'GET', timeout: timeoutMs };
    const req =
      p.scheme === 'https'
        ? // Identity is checked by the served-serial comparison; the probe only asks "healthy?".
          httpsRequest({ ...opts, rejectUnauthorized: false, ...tlsOpts })
        : httpRequest(opts);
    req.on('response', (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`${p.component} ${p.scheme}://${address}:${p.port}${p.path} answered ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error(`${p.component} ${p.scheme}://${address}:${p.port}${p.path} timed out`)));
    req.on('error', (e) => reject(new Error(`${p.component} ${p.scheme}://${address}:${p.port}${p.path}: ${e.message}`)));
    req.end();
  });
}

// Retries `check` until it passes or the deadline; components take a while to come back.
export async function eventually<T>(check: () => Promise<T>, deadlineMs: number, intervalMs = 250): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() + intervalMs > end) throw e;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

export function leafSerialOfPem(pem: string): string {
  return serialOf(new X509Certificate(pem));
}
