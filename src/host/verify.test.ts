// Where and how verification checks a node: the listen address of each port,
// the served chain and name, and what a probe reports when it is refused.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caFromMaterial, createCa, issueLeaf } from '../simulation/issue.js';
import type { HealthProbe } from '../distributions/types.js';
import { HostRoot } from './root.js';
import { eventually, probe, ServedCertificateError, servedSerialOn, type NodeAddresses } from './verify.js';

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const VALIDITY = { days: 30, notBefore: 'one-hour-back-clamped-to-ca' } as const;

let work: string;
let host: HostRoot;
let server: Server;
let server2: Server;
let port: number;
let port2: number;
let serial: string;
let caPem: string;
let otherCaPem: string;

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-verify-'));
  const ca = await createCa('test-ca', P256, 'sec1');
  const other = await createCa('other-ca', P256, 'sec1');
  caPem = ca.certPem;
  otherCaPem = other.certPem;
  // Valid for 127.0.0.1 only, as a loopback-bound component's certificate.
  const leaf = await issueLeaf({ template: { cn: 'c', ips: ['127.0.0.1'], eku: ['serverAuth'] }, ca: await caFromMaterial(ca), validity: VALIDITY, algorithm: P256, encoding: 'sec1', chained: false });
  serial = leaf.serial;
  await fs.writeFile(join(work, 'ca.crt'), caPem);
  host = new HostRoot(work);
  // Like kube-apiserver with --anonymous-auth=false: 401 without a client certificate.
  server = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const authed = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()?.subject;
    res.writeHead(authed ? 200 : 401).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
  server2 = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => res.writeHead(200).end());
  await new Promise<void>((r) => server2.listen(0, '127.0.0.2', () => r()));
  port2 = (server2.address() as { port: number }).port;
});

afterAll(async () => {
  for (const srv of [server, server2]) {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
  await fs.rm(work, { recursive: true, force: true });
});

const norm = (s: string) => s.replace(/^0+/, '').toUpperCase();

describe('servedSerialOn', () => {
  test('a node-ip listener: addresses that refuse the connection are skipped, the one that answers is used', async () => {
    // 127.0.0.3 has nothing on the port (refused); 127.0.0.1 is where the component is.
    const addrs: NodeAddresses = { loopback: '127.0.0.9', nodeIPs: ['127.0.0.3', '127.0.0.1'] };
    const got = await servedSerialOn(addrs, { port, on: 'node-ip' });
    expect(got.address).toBe('127.0.0.1');
    expect(norm(got.serial)).toBe(norm(serial));
  });

  const trust = (which: 'ca' | 'other') => ({ caFile: `${which}.crt`, ca: Buffer.from(which === 'ca' ? caPem : otherCaPem) });

  test('a loopback listener is checked for the name 127.0.0.1, wherever its loopback is reached', async () => {
    // The same certificate served on 127.0.0.2, as a simulated node's "127.0.0.1".
    await expect(servedSerialOn({ loopback: '127.0.0.2', nodeIPs: [] }, { port: port2, on: 'loopback' }, trust('ca'))).resolves.toMatchObject({ address: '127.0.0.2' });
  });

  test('a certificate from another CA is not "served"', async () => {
    await expect(servedSerialOn({ loopback: '127.0.0.1', nodeIPs: [] }, { port, on: 'loopback' }, trust('other'))).rejects.toThrow(/does not verify against other\.crt/);
  });

  test('a node-ip listener whose certificate does not name the node IP is not "served" (an etcd peer certificate without its SANs)', async () => {
    await expect(servedSerialOn({ loopback: '127.0.0.1', nodeIPs: ['127.0.0.2'] }, { port: port2, on: 'node-ip' }, trust('ca'))).rejects.toThrow(/not valid for 127\.0\.0\.2/);
    // The refusal names the serial it refused, so verification can tell the new certificate from the old.
    const refused = await servedSerialOn({ loopback: '127.0.0.1', nodeIPs: ['127.0.0.2'] }, { port: port2, on: 'node-ip' }, trust('ca')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServedCertificateError);
    expect(norm((refused as ServedCertificateError).serial)).toBe(norm(serial));
  });
});

describe('eventually', () => {
  // The served-certificate check treats the NEW certificate served and refused
  // by its clients as final (the component loaded it; waiting changes nothing),
  // so the node is rolled back at once instead of when the budget ends.
  test.each([
    { what: 'a final failure is thrown at once', final: true, attempts: 1 },
    { what: 'any other failure is retried until the deadline', final: false, attempts: 3 },
  ])('$what', async ({ final, attempts }) => {
    let n = 0;
    const err = new Error('refused');
    // A deadline of many intervals: under load a timer fires late, and the count must still say "retried".
    await expect(eventually(async () => {
      n++;
      throw err;
    }, 1000, 20, (e) => final && e === err)).rejects.toBe(err);
    expect(final ? n === 1 : n >= attempts).toBe(true);
  });
});

describe('probe', () => {
  const base: HealthProbe = { component: 'kube-apiserver', scheme: 'https', port: 0, on: 'loopback', path: '/readyz', roles: ['controlplane'], ca: 'ca.crt' };
  const addrs: NodeAddresses = { loopback: '127.0.0.1', nodeIPs: [] };

  test('anonymous: refused with 401, and the message says it went without a client certificate', async () => {
    await expect(probe({ ...base, port }, addrs, host)).rejects.toThrow(/answered 401 \(as anonymous\)/);
  });

  test('a serving certificate from another CA fails the probe and names the CA file', async () => {
    await fs.writeFile(join(work, 'other.crt'), otherCaPem);
    await expect(probe({ ...base, port, ca: 'other.crt' }, addrs, host)).rejects.toThrow(/verified against other\.crt/);
  });
});
