// The day-of-expiry recovery of the README ("A cluster whose certificates expired
// while it was off"), done step by step on an RKE2 cluster of real components
// (test/realnode): three servers running the real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, and a worker. The cluster runs,
// is switched off, and every leaf certificate is re-signed by openssl to have
// expired 21 days ago (CAs valid), as after a year powered off (rancher/rke2#8318).
//
// The oracles are the real components: switched on as it is, etcd refuses its
// peers' expired certificates and no API server becomes ready; after the
// documented commands, every etcd member answers /health to the NEW client pair,
// every kube-apiserver answers /readyz to the NEW admin pair, rke2.yaml embeds
// it, every endpoint serves a certificate that openssl verifies against the
// unchanged CA, and `certrotator node check --fail-on expired` passes on every node.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealRke2Cluster, type RealNode } from '../realnode/cluster.js';
import { expireLeaves } from '../realnode/expire.js';
import { tls } from '../realnode/rke2-layout.js';
import { waitFor } from './support/controller.js';
import { etcdIsHealthy } from './support/real-checks.js';
import { diskSerial } from './support/real-suite.js';
import { apiReadyz, embeddedAdminSerial, etcdHealth } from './support/rke2-oracles.js';
import { opensslVerify, servedPem } from './support/rotation.js';
import { cliEntry } from '../../src/simulation/cli-entry.js';

let work: string;
let cluster: RealRke2Cluster | undefined;
const DAYS_EXPIRED = 21;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'certrotator-recovery-rke2-'));
  cluster = await RealRke2Cluster.start({ workDir: work, binDir: process.env.CERTROTATOR_BIN_DIR!, servers: 3, workers: 1 });
}, 420_000);

afterAll(async () => {
  try {
    await cluster?.stop();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 180_000);

const servers = (): RealNode[] => cluster!.servers;
const worker = (): RealNode => cluster!.nodes.find((n) => !n.server)!;

/** `certrotator node …` run inside the node as root, with the node's tree where rke2 keeps it. */
async function certrotator(n: RealNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await cluster!.exec(n, [process.execPath, ...cliEntry(), 'node', ...args, '--distribution', 'rke2', '--data-dir', n.dataDir]);
  expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
  return r;
}

const expiredFiles = (checkJson: string): string[] =>
  (JSON.parse(checkJson).certificates as { path: string; status: string }[]).filter((c) => c.status === 'EXPIRED').map((c) => c.path);
const notAfter = (pem: string): Date => new Date(new X509Certificate(pem).validTo);

describe('RKE2 recovery on the day of expiry, on real etcd and kube-apiserver', () => {
  test('switched on with every leaf expired, the real components refuse each other', async () => {
    const t0 = Date.now();
    const step = (m: string) => process.stderr.write(`recovery: ${m} at ${(Date.now() - t0) / 1000} s\n`);
    await cluster!.powerOff();
    step('off');
    const first = servers()[0]!;
    const cas = ['server-ca', 'client-ca', 'request-header-ca', 'etcd/server-ca', 'etcd/peer-ca'].map((c) => ({ cert: tls(first.dataDir, `${c}.crt`), key: tls(first.dataDir, `${c}.key`) }));
    for (const n of cluster!.nodes) {
      const changed = await expireLeaves([join(n.dataDir, 'server', 'tls'), join(n.dataDir, 'agent')], cas, DAYS_EXPIRED);
      expect(changed.length).toBeGreaterThan(n.server ? 10 : 2);
    }
    step('expired');
    const check = await certrotator(first, ['check', '--fail-on', 'expired', '-o', 'json']);
    expect(check.code).toBe(1);
    const expired = expiredFiles(check.stdout);
    for (const f of ['server/tls/etcd/peer-server-client.crt', 'server/tls/serving-kube-apiserver.crt', 'server/tls/client-admin.crt']) expect(expired).toContain(join(first.dataDir, f).slice(1));

    await Promise.all(servers().map((n) => cluster!.systemctl(n, 'start')));
    step('switched on');
    // etcd's own words, not ours: its peers' certificates have expired.
    await waitFor('etcd refusing expired peer certificates', async () => readFileSync(join(first.dir, 'run', 'logs', 'etcd.log'), 'utf8').includes('certificate has expired'), 60_000);
    step('etcd refused');
    await cluster!.powerOff();
    step('off again');
  }, 300_000);

  test('the documented recovery: renew offline on every server, start the servers together, then the workers', async () => {
    const beforeAdmin = new Map<string, string>();
    for (const n of servers()) beforeAdmin.set(n.name, await diskSerial(tls(n.dataDir, 'client-admin.crt')));
    // 1. On every server, with rke2-server stopped: renew every file from the CAs on disk, no restart.
    for (const n of servers()) {
      const r = await certrotator(n, ['rotate', '--all', '--no-restart', '-o', 'json']);
      expect(`${n.name} exit ${r.code} ${r.stderr}`).toBe(`${n.name} exit 0 ${r.stderr}`);
      const files = JSON.parse(r.stdout).files as { path: string; status: string }[];
      expect(files.filter((f) => f.status === 'renewed').map((f) => f.path)).toContain(join(n.dataDir, 'server/tls/etcd/peer-server-client.crt').slice(1));
      // What is still expired is exactly what rke2-server makes anew at start, and the report says so.
      const pending = files.filter((f) => f.status === 'pending-restart').map((f) => f.path);
      const check = await certrotator(n, ['check', '--fail-on', 'expired', '-o', 'json']);
      expect(expiredFiles(check.stdout).filter((f) => !pending.includes(f))).toEqual([]);
    }
    // 2. Start the servers together: etcd needs a majority of members with good certificates.
    await Promise.all(servers().map((n) => cluster!.systemctl(n, 'start')));
    await cluster!.waitApiServers(180_000, (n) => ['kube-apiserver', 'etcd'].map((c) => join(n.dir, 'run', 'logs', `${c}.log`)));
    for (const n of servers()) {
      for (const via of servers()) {
        await waitFor(`${n.name} etcd healthy to ${via.name}'s new client pair`, async () => etcdIsHealthy(await etcdHealth(n, via).catch(() => ({ status: 0, body: '' }))), 60_000);
        expect((await apiReadyz(n, via)).status).toBe(200);
      }
      const check = await certrotator(n, ['check', '--fail-on', 'expired']);
      expect(`${n.name} exit ${check.code} ${check.stderr}`).toBe(`${n.name} exit 0 ${check.stderr}`);
      // rke2.yaml is rewritten at start with the new admin pair (k3s pkg/server/server.go writeKubeConfig).
      const embedded = await embeddedAdminSerial(n);
      expect(embedded).toBe(await diskSerial(tls(n.dataDir, 'client-admin.crt')));
      expect(embedded).not.toBe(beforeAdmin.get(n.name));
      // Every endpoint serves a current certificate that openssl verifies against the unchanged CA.
      for (const [port, ca] of [[6443, 'server-ca.crt'], [2379, 'etcd/server-ca.crt'], [2380, 'etcd/peer-ca.crt'], [9345, 'server-ca.crt']] as const) {
        const pem = await servedPem(n.ip, port);
        expect(`${n.name}:${port} ${await opensslVerify(tls(n.dataDir, ca), pem)}`).toMatch(/: OK$/);
        expect(notAfter(pem).getTime()).toBeGreaterThan(Date.now());
      }
    }
    // 3. The workers: rke2-agent takes new certificates from the supervisor at start.
    const w = worker();
    await cluster!.systemctl(w, 'restart');
    const check = await certrotator(w, ['check', '--fail-on', 'expired']);
    expect(`${w.name} exit ${check.code} ${check.stderr}`).toBe(`${w.name} exit 0 ${check.stderr}`);
    const kubelet = await servedPem(w.ip, 10250);
    expect(await opensslVerify(tls(servers()[0]!.dataDir, 'server-ca.crt'), kubelet)).toMatch(/: OK$/);
  }, 600_000);
});
