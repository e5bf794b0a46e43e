// `certrotator node rotate` per service, for both distributions, on real host
// trees with the simulated distribution restarting and serving over TLS. The
// expected file lists below are written from the reference (§1.3, §2.2), not
// derived from the catalog, so a catalog mistake fails here.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rke2Agent, rke2Server, rkeNode, type FixtureNode } from '../simulation/fixtures.js';
import { opensslPublicKeyOfPrivate, opensslServedSerial, opensslVerify, opensslX509, runCli, type CliRun } from '../simulation/harness.js';
import { SimulatedNode } from '../simulation/node.js';
import { changedPaths, copyDir, snapshotTree } from '../simulation/tree.js';
import { runIp } from '../simulation/loopback.js';

const D = 'var/lib/rancher/rke2';
const S = `${D}/server/tls`;
const A = `${D}/agent`;
const SSL = 'etc/kubernetes/ssl';
const pair = (base: string, crt = '.crt', key = '.key') => [`${base}${crt}`, `${base}${key}`];
const rkePair = (name: string) => [`${SSL}/${name}.pem`, `${SSL}/${name}-key.pem`];

// RKE2 agents rewrite the kubelet pairs at every start (k3s agent config get()).
const KUBELET_AGENT = [...pair(`${A}/client-kubelet`), ...pair(`${A}/serving-kubelet`)];

// Which CA file must verify each renewed certificate (the unchanged CA on disk).
const RKE2_CA: Record<string, string> = {
  'client-admin': `${S}/client-ca.crt`,
  'client-kube-apiserver': `${S}/client-ca.crt`,
  'serving-kube-apiserver': `${S}/server-ca.crt`,
  'client-controller': `${S}/client-ca.crt`,
  'client-scheduler': `${S}/client-ca.crt`,
  'client-rke2-cloud-controller': `${S}/client-ca.crt`,
  client: `${S}/etcd/server-ca.crt`,
  'server-client': `${S}/etcd/server-ca.crt`,
  'peer-server-client': `${S}/etcd/peer-ca.crt`,
  'client-auth-proxy': `${S}/request-header-ca.crt`,
  'client-supervisor': `${S}/client-ca.crt`,
  'client-rke2-controller': `${S}/client-ca.crt`,
  'client-kube-proxy': `${S}/client-ca.crt`,
  'client-kubelet': `${S}/client-ca.crt`,
  'serving-kubelet': `${S}/server-ca.crt`,
};

const RKE2_SERVER: Record<string, string[]> = {
  // rke2-server rewrites its admin kubeconfig, which embeds client-admin, at every
  // start (k3s pkg/server/server.go writeKubeConfig).
  admin: [...pair(`${S}/client-admin`), 'etc/rancher/rke2/rke2.yaml'],
  'api-server': [...pair(`${S}/client-kube-apiserver`), ...pair(`${S}/serving-kube-apiserver`)],
  'controller-manager': [...pair(`${S}/client-controller`), ...pair(`${S}/kube-controller-manager/kube-controller-manager`)],
  scheduler: [...pair(`${S}/client-scheduler`), ...pair(`${S}/kube-scheduler/kube-scheduler`)],
  'cloud-controller': pair(`${S}/client-rke2-cloud-controller`),
  etcd: [...pair(`${S}/etcd/client`), ...pair(`${S}/etcd/server-client`), ...pair(`${S}/etcd/peer-server-client`)],
  'auth-proxy': pair(`${S}/client-auth-proxy`),
  supervisor: pair(`${S}/client-supervisor`),
  'rke2-server': [`${S}/dynamic-cert.json`],
  'rke2-controller': [...pair(`${S}/client-rke2-controller`), ...pair(`${A}/client-rke2-controller`)],
  kubelet: [`${S}/client-kubelet.key`, `${S}/serving-kubelet.key`, ...KUBELET_AGENT],
  'kube-proxy': [...pair(`${S}/client-kube-proxy`), ...pair(`${A}/client-kube-proxy`)],
};

// On a worker only the agent files exist; kube-proxy and rke2-controller are copies
// of the server's pairs, so they change only after the server's did.
const RKE2_WORKER: Record<string, string[]> = {
  kubelet: KUBELET_AGENT,
  'kube-proxy': [],
  'rke2-controller': [],
};

// The fixture's address and an etcd peer's, in this run's loopback network (RKE names files by them).
const IP = runIp(203, 1);
const PEER_IP = runIp(203, 99);
const dashed = (ip: string): string => ip.replaceAll('.', '-');
const escaped = (ip: string): string => ip.replaceAll('.', '\\.');

const RKE: Record<string, string[]> = {
  etcd: [...rkePair(`kube-etcd-${dashed(IP)}`), ...rkePair(`kube-etcd-${dashed(PEER_IP)}`)],
  'kube-apiserver': rkePair('kube-apiserver'),
  'kube-controller-manager': rkePair('kube-controller-manager'),
  'kube-scheduler': rkePair('kube-scheduler'),
  'kube-proxy': rkePair('kube-proxy'),
  kubelet: [...rkePair('kube-node'), ...rkePair(`kube-kubelet-${dashed(IP)}`)],
};

let work: string;
let rke2ServerFixture: FixtureNode;
let rke2AgentFixture: FixtureNode;
let rkeFixture: FixtureNode;
let ipCounter = 10;
const outputs: CliRun[] = [];

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-rotate-'));
  rke2ServerFixture = await rke2Server(join(work, 'fixture-rke2-server'), { nodeName: 'server-1', nodeIP: IP });
  rke2AgentFixture = await rke2Agent(join(work, 'fixture-rke2-agent'), { nodeName: 'agent-1', nodeIP: runIp(203, 2), supervisorRoot: rke2ServerFixture.root });
  rkeFixture = await rkeNode(join(work, 'fixture-rke'), {
    nodeName: 'rke-1',
    nodeIP: IP,
    roles: ['etcd', 'controlplane', 'worker'],
    etcdIPs: [IP, PEER_IP],
    withOptional: true,
  });
}, 60_000);

afterAll(async () => {
  // No run, successful or not, may ever print key material.
  for (const o of outputs) expect(`${o.stdout}${o.stderr}`).not.toContain('PRIVATE KEY');
  await fs.rm(work, { recursive: true, force: true });
});

interface Case {
  readonly fixture: () => FixtureNode;
  readonly distribution: 'rke2' | 'rke';
  readonly args: string[];
  readonly expected: string[];
  readonly backupPrefix: string;
  // Files deleted from the copy before the run.
  readonly removed?: string[];
}

interface RotateReport {
  backupDir?: string;
  files: { path: string; newSerial?: string; servedVerified: boolean; status: string; wasMissing?: boolean; note?: string }[];
}

// Copies the fixture, starts its simulated components on the fixture's address,
// runs the CLI, and checks the tree.
// Which port serves each renewed file, by the components' flags: a table of
// its own, not the catalog's (a catalog error then fails here).
const SERVED_ON: readonly [RegExp, number][] = [
  [/server\/tls\/serving-kube-apiserver\.crt$/, 6443],
  [/server\/tls\/etcd\/server-client\.crt$/, 2379],
  [/server\/tls\/etcd\/peer-server-client\.crt$/, 2380],
  [/agent\/serving-kubelet\.crt$/, 10250],
  [/server\/tls\/kube-controller-manager\/kube-controller-manager\.crt$/, 10257],
  [/server\/tls\/kube-scheduler\/kube-scheduler\.crt$/, 10259],
  [/ssl\/kube-apiserver\.pem$/, 6443],
  // Each etcd node serves its own kube-etcd-<ip> (the fixture's IP).
  [new RegExp(`ssl/kube-etcd-${dashed(IP)}\\.pem$`), 2379],
  [/server\/tls\/dynamic-cert\.json$/, 9345],
  [/ssl\/kube-kubelet-[0-9-]+\.pem$/, 10250],
];
const normSerial = (s: string): string => s.replace(/^0+(?=.)/, '').toLowerCase();

async function rotateAndCheck(c: Case): Promise<{ run: CliRun; report: RotateReport; root: string }> {
  const fixture = c.fixture();
  const root = join(work, `run-${ipCounter}`);
  await copyDir(fixture.root, root);
  for (const p of c.removed ?? []) await fs.rm(join(root, p));
  // The fixture's own IP: verification checks the served certificate is valid for it.
  const nodeIP = fixture.nodeIP;
  ipCounter++;
  const node: FixtureNode = { ...fixture, root };
  const sim = new SimulatedNode(node, { address: nodeIP });
  await sim.start();
  const isBackup = (rel: string) => rel.startsWith(`${c.backupPrefix}`);
  const before = await snapshotTree(root);
  let run: CliRun;
  const servedAfter = new Map<string, string>();
  try {
    run = await runCli([
      'node', 'rotate', '--host-root', root, '--distribution', c.distribution, ...c.args,
      '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', nodeIP, '--loopback-address', nodeIP, '--verify-timeout', '10', '-o', 'json',
    ]);
    // What each renewed serving file's port serves now, asked by openssl while the components still run.
    if (run.code === 0) {
      for (const f of (JSON.parse(run.stdout) as RotateReport).files) {
        const port = SERVED_ON.find(([re]) => re.test(f.path))?.[1];
        if (port !== undefined && !c.args.includes('--no-restart')) servedAfter.set(f.path, await opensslServedSerial(nodeIP, port).catch((e: Error) => `none (${e.message})`));
      }
    }
  } finally {
    await sim.stop();
  }
  outputs.push(run);
  expect(run.stderr).not.toContain('error');
  expect(run.code).toBe(0);
  const after = await snapshotTree(root, isBackup);
  expect(changedPaths(before, after)).toEqual([...c.expected].sort());

  const report = JSON.parse(run.stdout) as RotateReport;
  if (c.expected.length === 0) {
    expect(report.files).toEqual([]);
    return { run, report, root };
  }
  // The backup holds the original bytes of every changed file.
  const backupFiles = await snapshotTree(join(root, report.backupDir!));
  const backupHashes = new Set([...backupFiles.values()].map((e) => e.sha256));
  // rke2.yaml is not ours to back up: a rollback restores client-admin and the
  // restart makes rke2-server write the kubeconfig from it again.
  // A file that was not there has nothing to back up.
  for (const p of c.expected.filter((p) => p !== 'etc/rancher/rke2/rke2.yaml' && !c.removed?.includes(p))) expect(backupHashes.has(before.get(p)!.sha256)).toBe(true);

  for (const certPath of c.expected.filter((p) => /\.(crt|pem)$/.test(p) && !p.endsWith('-key.pem'))) {
    const keyPath = certPath.endsWith('.crt') ? certPath.replace(/\.crt$/, '.key') : certPath.replace(/\.pem$/, '-key.pem');
    const oldCertFile = join(work, `old-${ipCounter}-${certPath.replace(/\//g, '_')}`);
    await fs.writeFile(oldCertFile, await fs.readFile(join(fixture.root, certPath)));
    const [oldCert, newCert] = await Promise.all([opensslX509(oldCertFile), opensslX509(join(root, certPath))]);
    if (/kube-(controller-manager|scheduler)\/kube-/.test(certPath)) {
      // cert-dir certificates are self-signed and regenerated by the component itself
      // (its CN carries the time), so only "new and served" applies.
      expect(newCert.serial).not.toBe(oldCert.serial);
      expect(newCert.subject).toMatch(new RegExp(`^CN = ${escaped(IP)}@\\d+$`));
      continue;
    }
    // Same identity and usages, same algorithm, new serial and key.
    expect(newCert.subject).toBe(oldCert.subject);
    expect(newCert.san).toBe(oldCert.san);
    expect(newCert.keyUsage).toBe(oldCert.keyUsage);
    expect(newCert.extKeyUsage).toBe(oldCert.extKeyUsage);
    expect(newCert.basicConstraints).toBe(oldCert.basicConstraints);
    expect(newCert.publicKeyAlgorithm).toBe(oldCert.publicKeyAlgorithm);
    expect(newCert.publicKeySize).toBe(oldCert.publicKeySize);
    expect(newCert.curve).toBe(oldCert.curve);
    expect(newCert.serial).not.toBe(oldCert.serial);
    expect(newCert.publicKeyPem).not.toBe(oldCert.publicKeyPem);
    expect(await opensslPublicKeyOfPrivate(join(root, keyPath))).toBe(newCert.publicKeyPem);
    // The key keeps its PEM type (SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY").
    const [oldKey, newKey] = [await fs.readFile(join(fixture.root, keyPath), 'utf8'), await fs.readFile(join(root, keyPath), 'utf8')];
    expect(newKey.split('\n')[0]).toBe(oldKey.split('\n')[0]);
    expect(after.get(keyPath)!.mode).toBe(0o600);
    // Signed by the unchanged CA, proven by openssl's signature check.
    const base = certPath.split('/').pop()!.replace(/\.(crt|pem)$/, '');
    // Agent files are checked against the agent's own copies of the CAs.
    const agentCa = base === 'serving-kubelet' ? `${A}/server-ca.crt` : `${A}/client-ca.crt`;
    const ca =
      c.distribution === 'rke'
        ? base.includes('proxy-client')
          ? `${SSL}/kube-apiserver-requestheader-ca.pem`
          : `${SSL}/kube-ca.pem`
        : certPath.startsWith(A)
          ? agentCa
          : RKE2_CA[base];
    expect(ca).toBeDefined();
    {
      const verified = await opensslVerify(join(root, ca!), join(root, certPath));
      expect(verified.output).toMatch(/: OK$/);
      expect(after.get(ca!)).toEqual(before.get(ca!));
      const rke2Signed = c.distribution === 'rke2' && certPath.startsWith(S);
      if (rke2Signed) {
        // RKE2 .crt files carry the CA after the leaf; the rest of the file is the CA file.
        const text = await fs.readFile(join(root, certPath), 'utf8');
        expect(text.endsWith(await fs.readFile(join(root, ca!), 'utf8'))).toBe(true);
        expect(after.get(certPath)!.mode).toBe(0o644);
        const days = (newCert.notAfter.getTime() - Date.now()) / 86_400_000;
        expect(days).toBeGreaterThan(364);
        expect(days).toBeLessThanOrEqual(365);
      }
      if (c.distribution === 'rke') {
        const caCert = await opensslX509(join(root, ca!));
        expect(newCert.notBefore).toEqual(caCert.notBefore);
        // Ten years from now, as RKE gives; kube-ca is ten years too and older, so the leaf ends with it (clamped).
        if (caCert.notAfter.getTime() < Date.now() + 3649 * 86_400_000) expect(newCert.notAfter).toEqual(caCert.notAfter);
        else expect((newCert.notAfter.getTime() - Date.now()) / 86_400_000).toBeGreaterThan(3649);
      }
    }
  }
  // Every serving certificate is what its port serves now (read by openssl, not from the report's servedVerified).
  const served = report.files.filter((f) => servedAfter.has(f.path) && f.newSerial);
  if (c.expected.some((p) => /serving|server-client|dynamic-cert|kube-etcd|kube-kubelet|kube-apiserver\.pem/.test(p)) && !c.args.includes('--no-restart')) {
    expect(served.length).toBeGreaterThan(0);
  }
  for (const f of served) expect({ path: f.path, served: servedAfter.get(f.path) }).toEqual({ path: f.path, served: normSerial(f.newSerial!) });
  return { run, report, root };
}

describe('node rotate, RKE2 server', () => {
  test.each(Object.entries(RKE2_SERVER))('--service %s changes exactly its files', async (service, expected) => {
    // A server restart always re-issues the agent's kubelet pairs (rke2-server runs the agent too).
    const all = [...new Set([...expected, ...KUBELET_AGENT])];
    await rotateAndCheck({ fixture: () => rke2ServerFixture, distribution: 'rke2', args: ['--service', service], expected: all, backupPrefix: `${D}/server/tls-` });
  }, 60_000);

  test('--all changes every service file and nothing else', async () => {
    const all = [...new Set([...Object.values(RKE2_SERVER).flat()])];
    await rotateAndCheck({ fixture: () => rke2ServerFixture, distribution: 'rke2', args: ['--all'], expected: all, backupPrefix: `${D}/server/tls-` });
  }, 60_000);

  // Deleting dynamic-cert.json is the usual remedy for a bad supervisor
  // certificate; rke2 makes a new one at start from the regenerate trigger.
  test('--all with dynamic-cert.json missing: writes the trigger, rke2 issues a new one at the restart, everything else is renewed', async () => {
    const dynamicCert = `${S}/dynamic-cert.json`;
    const all = [...new Set([...Object.values(RKE2_SERVER).flat()])];
    const { run, report, root } = await rotateAndCheck({
      fixture: () => rke2ServerFixture,
      distribution: 'rke2',
      args: ['--all'],
      removed: [dynamicCert],
      // dynamic-cert.json counts as changed: absent before, present after.
      expected: all,
      backupPrefix: `${D}/server/tls-`,
    });
    expect(run.stderr).toContain(`plan: ${dynamicCert}: missing; writing the regenerate trigger ${S}/dynamic-cert-regenerate, rke2 issues a new one at start`);
    expect(report.files.find((f) => f.path === dynamicCert)).toMatchObject({
      status: 'renewed',
      servedVerified: true,
      wasMissing: true,
      note: `was missing: wrote the regenerate trigger ${S}/dynamic-cert-regenerate; rke2 issues a new one at start`,
    });
    // The simulated rke2 consumed the trigger at start and made a new file, from server-ca.
    await expect(fs.access(join(root, S, 'dynamic-cert-regenerate'))).rejects.toThrow();
    const secret = JSON.parse(await fs.readFile(join(root, dynamicCert), 'utf8')) as { data: Record<string, string> };
    const servedCert = join(work, `dynamic-cert-${ipCounter}.crt`);
    await fs.writeFile(servedCert, Buffer.from(secret.data['tls.crt']!, 'base64'));
    expect((await opensslVerify(join(root, S, 'server-ca.crt'), servedCert)).output).toMatch(/: OK$/);
    // Nothing else was missing, so nothing else says so.
    expect(report.files.filter((f) => f.wasMissing || f.note).map((f) => f.path)).toEqual([dynamicCert]);
  }, 60_000);

  test('the table says dynamic-cert.json was missing and the trigger was written (--no-restart: pending the restart)', async () => {
    const root = join(work, `run-missing-table-${ipCounter++}`);
    await copyDir(rke2ServerFixture.root, root);
    await fs.rm(join(root, S, 'dynamic-cert.json'));
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--service', 'rke2-server', '--no-restart']);
    outputs.push(run);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /rke2-server\s+var\/lib\/rancher\/rke2\/server\/tls\/dynamic-cert\.json\s.*pending-restart\s+was missing: wrote the regenerate trigger var\/lib\/rancher\/rke2\/server\/tls\/dynamic-cert-regenerate; rke2 issues a new one at start$/m,
    );
    await expect(fs.access(join(root, S, 'dynamic-cert-regenerate'))).resolves.toBeUndefined();
    await expect(fs.access(join(root, S, 'dynamic-cert.json'))).rejects.toThrow();
  });

  // Only a file the distribution makes from a trigger may be missing.
  test.each([
    ['client-supervisor.crt alone', [`${S}/client-supervisor.crt`], `${S}/client-supervisor.crt: missing (service supervisor, client-supervisor)`],
    ['client-supervisor.crt beside dynamic-cert.json', [`${S}/client-supervisor.crt`, `${S}/dynamic-cert.json`], `${S}/client-supervisor.crt: missing (service supervisor, client-supervisor)`],
    ['an agent kubelet pair (rewritten at every start, but not from a trigger)', [`${A}/client-kubelet.crt`], `${A}/client-kubelet.crt: missing (service kubelet, agent-client-kubelet)`],
  ])('--all with %s missing still refuses the node, naming the file, and changes nothing', async (_name, removed, message) => {
    const root = join(work, `run-refused-${ipCounter++}`);
    await copyDir(rke2ServerFixture.root, root);
    for (const p of removed) await fs.rm(join(root, p));
    const before = await snapshotTree(root);
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--all', '--no-restart']);
    outputs.push(run);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`certrotator: error: plan: ${message}`);
    expect(changedPaths(before, await snapshotTree(root))).toEqual([]);
  });
});

describe('node rotate, RKE2 worker', () => {
  test.each(Object.entries(RKE2_WORKER))('--service %s (agent restart re-issues from the server CA)', async (service, expected) => {
    await rotateAndCheck({
      fixture: () => rke2AgentFixture,
      distribution: 'rke2',
      args: ['--service', service],
      expected: [...new Set([...expected, ...KUBELET_AGENT])],
      backupPrefix: `${A}/tls-`,
    });
  }, 60_000);

  test('a server-only service is nothing to do on a worker and changes nothing', async () => {
    await rotateAndCheck({ fixture: () => rke2AgentFixture, distribution: 'rke2', args: ['--service', 'api-server'], expected: [], backupPrefix: `${A}/tls-` });
  }, 60_000);
});

describe('node rotate, RKE', () => {
  test.each(Object.entries(RKE))('--service %s changes exactly its files', async (service, expected) => {
    await rotateAndCheck({ fixture: () => rkeFixture, distribution: 'rke', args: ['--service', service], expected, backupPrefix: 'etc/kubernetes/ssl-backup-' });
  }, 60_000);

  test('--all also renews the proxy-client certificate', async () => {
    await rotateAndCheck({
      fixture: () => rkeFixture,
      distribution: 'rke',
      args: ['--all'],
      expected: [...Object.values(RKE).flat(), ...rkePair('kube-apiserver-proxy-client')],
      backupPrefix: 'etc/kubernetes/ssl-backup-',
    });
  }, 60_000);

  test('--no-restart renews in place without asking for a restart', async () => {
    await rotateAndCheck({ fixture: () => rkeFixture, distribution: 'rke', args: ['--service', 'kube-proxy', '--no-restart'], expected: rkePair('kube-proxy'), backupPrefix: 'etc/kubernetes/ssl-backup-' });
  }, 60_000);
});
