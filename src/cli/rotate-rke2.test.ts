// RKE2 faithfulness of `certrotator node rotate` / `node check`, on fixture trees
// with the simulated rke2 restarting them: the cert-dir pairs of both kinds (self-
// signed before k3s PR #12285, server-ca-signed after), CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS
// from rke2-server's EnvironmentFile=, and the admin kubeconfig rke2.yaml.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedClientSerials } from '../host/embedded.js';
import { rke2Server, writeHostFile, type FixtureNode } from '../simulation/fixtures.js';
import { opensslVerify, opensslX509, runCli, type CliRun } from '../simulation/harness.js';
import { SimulatedNode, type SimulationFaults } from '../simulation/node.js';
import { copyDir } from '../simulation/tree.js';
import { runIp } from '../simulation/loopback.js';

const D = 'var/lib/rancher/rke2';
const S = `${D}/server/tls`;
const KCM = `${S}/kube-controller-manager/kube-controller-manager.crt`;
const SCHED = `${S}/kube-scheduler/kube-scheduler.crt`;

let work: string;
let selfSigned: FixtureNode;
let serverCaSigned: FixtureNode;
let n = 0;
const outputs: CliRun[] = [];

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'certrotator-rotate-rke2-'));
  selfSigned = await rke2Server(join(work, 'self'), { nodeName: 'server-1', nodeIP: runIp(208, 1) });
  serverCaSigned = await rke2Server(join(work, 'k3s-signed'), { nodeName: 'server-2', nodeIP: runIp(208, 2), certDirSignedBy: 'distribution' });
}, 60_000);

afterAll(async () => {
  // No run may print key material (rke2.yaml embeds client-key-data).
  for (const o of outputs) expect(`${o.stdout}${o.stderr}`).not.toContain('PRIVATE KEY');
  for (const o of outputs) expect(`${o.stdout}${o.stderr}`).not.toContain('client-key-data');
  await fs.rm(work, { recursive: true, force: true });
});

interface Report {
  files: { id: string; path: string; newSerial?: string; notAfter?: string; servedVerified: boolean; signedBy?: string; validity?: string; status: string }[];
  warnings?: string[];
  error?: { step: string; rolledBack: boolean; message: string };
}

// Copies the fixture, lets `prepare` change the copy, runs the CLI against the simulated node.
async function rotate(
  fixture: FixtureNode,
  args: string[],
  o: { prepare?: (root: string) => Promise<void>; faults?: Partial<SimulationFaults>; node?: Partial<FixtureNode> } = {},
): Promise<{ run: CliRun; report: Report; root: string }> {
  const root = join(work, `run-${n++}`);
  await copyDir(fixture.root, root);
  await o.prepare?.(root);
  const sim = new SimulatedNode({ ...fixture, root, ...o.node }, { address: fixture.nodeIP });
  Object.assign(sim.faults, o.faults ?? {});
  await sim.start();
  let run: CliRun;
  try {
    run = await runCli([
      'node', 'rotate', '--host-root', root, '--distribution', 'rke2', ...args,
      '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', fixture.nodeIP, '--loopback-address', fixture.nodeIP, '--verify-timeout', '4', '-o', 'json',
    ]);
  } finally {
    await sim.stop();
  }
  outputs.push(run);
  return { run, report: JSON.parse(run.stdout) as Report, root };
}

describe('kube-controller-manager / kube-scheduler serving pairs: judged by the file on disk', () => {
  test.each([
    ['self-signed (before k3s PR #12285)', () => selfSigned, 'self-signed'],
    ['signed by server-ca (k3s PR #12285 and later)', () => serverCaSigned, `signed by ${S}/server-ca.crt`],
  ])('node check says which: %s', async (_name, fixture, expected) => {
    const run = await runCli(['node', 'check', '--host-root', fixture().root, '--distribution', 'rke2', '-o', 'json']);
    outputs.push(run);
    expect(run.code).toBe(0);
    const certs = (JSON.parse(run.stdout) as { certificates: { path: string; signedBy?: string }[] }).certificates;
    expect(certs.filter((c) => c.path === KCM || c.path === SCHED).map((c) => c.signedBy)).toEqual([expected, expected]);
  });

  test.each([
    ['self-signed', () => selfSigned, 'self-signed'],
    ['server-ca-signed', () => serverCaSigned, `signed by ${S}/server-ca.crt`],
  ])('%s: removed, regenerated at start, served, and the report says who signed the new one', async (_name, fixture, expected) => {
    const { run, report, root } = await rotate(fixture(), ['--service', 'controller-manager', '--service', 'scheduler']);
    expect(run.code).toBe(0);
    for (const path of [KCM, SCHED]) {
      expect(report.files.find((f) => f.path === path)).toMatchObject({ signedBy: expected, servedVerified: true, status: 'renewed' });
    }
    if (expected !== 'self-signed') {
      // As k3s's PR verifies it: openssl verify -CAfile server-ca.crt <component>.crt: OK.
      for (const path of [KCM, SCHED]) expect((await opensslVerify(join(root, S, 'server-ca.crt'), join(root, path))).output).toMatch(/: OK$/);
    }
  }, 60_000);

  test('a pair server-ca signed before the restart that comes back signed by anything else fails verification and is rolled back', async () => {
    // The simulated distribution now makes self-signed pairs, as if another CA wrote them.
    const { run, report } = await rotate(serverCaSigned, ['--service', 'controller-manager'], { node: { certDirSignedBy: 'self' } });
    expect(run.code).toBe(1);
    expect(report.error).toMatchObject({ step: 'verify', rolledBack: true });
    expect(report.error!.message).toContain(`${KCM}: was signed by ${S}/server-ca.crt before the restart; the regenerated certificate is not`);
  }, 60_000);
});

describe('CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS from rke2-server\'s environment files', () => {
  const daysOf = async (root: string, rel: string) => ((await opensslX509(join(root, rel))).notAfter.getTime() - Date.now()) / 86_400_000;

  test.each([
    // [env files, expected days, validity in the report, warning]
    [{}, 365, /^365d \(default; CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS not set in rke2-server's environment/, undefined],
    [{ 'etc/default/rke2-server': 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=730\n' }, 730, /^730d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in \/etc\/default\/rke2-server$/, undefined],
    // A later EnvironmentFile= overrides an earlier one, as systemd does.
    [
      { 'etc/default/rke2-server': 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=730\n', 'usr/local/lib/systemd/system/rke2-server.env': 'HOME=/root\nCATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS="90"\n' },
      90,
      /^90d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in \/usr\/local\/lib\/systemd\/system\/rke2-server\.env$/,
      undefined,
    ],
    // strconv.Atoi fails: dynamiclistener logs it and keeps 365.
    [
      { 'etc/sysconfig/rke2-server': 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=2y\n' },
      365,
      /^365d \(default; CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in \/etc\/sysconfig\/rke2-server is not an integer\)$/,
      'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS="2y" in /etc/sysconfig/rke2-server is not an integer; rke2 ignores it and keeps 365 days',
    ],
  ] as const)('%j → %d days', async (files, days, validity, warning) => {
    const prepare = async (root: string) => {
      for (const [rel, text] of Object.entries(files)) await writeHostFile(root, rel, text, 0o644);
    };
    const { run, report, root } = await rotate(selfSigned, ['--service', 'admin'], { prepare });
    expect(run.code).toBe(0);
    const admin = report.files.find((f) => f.id === 'client-admin')!;
    expect(admin.validity).toMatch(validity);
    const d = await daysOf(root, `${S}/client-admin.crt`);
    expect(d).toBeGreaterThan(days - 1);
    expect(d).toBeLessThanOrEqual(days);
    if (warning) {
      expect(report.warnings?.some((w) => w.startsWith(warning))).toBe(true);
      expect(run.stderr).toContain(`certrotator: warning: ${warning}`);
    } else {
      expect(report.warnings ?? []).toEqual([]);
    }
  }, 60_000);

  test('a value of 0 or less (rke2 would sign already-expired leaves) is refused before anything changes', async () => {
    const prepare = (root: string) => writeHostFile(root, 'etc/default/rke2-server', 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=0\n', 0o644);
    const { run, report } = await rotate(selfSigned, ['--service', 'admin'], { prepare });
    expect(run.code).toBe(1);
    expect(report.error).toMatchObject({ step: 'plan', rolledBack: false });
    expect(report.error!.message).toContain('CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=0 in /etc/default/rke2-server');
  }, 60_000);

  test('the table output shows the validity of each signed file', async () => {
    const root = join(work, `run-${n++}`);
    await copyDir(selfSigned.root, root);
    await writeHostFile(root, 'etc/default/rke2-server', 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=730\n', 0o644);
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--service', 'admin', '--no-restart']);
    outputs.push(run);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('validity 730d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in /etc/default/rke2-server');
    expect(run.stderr).toContain('certrotator: plan: signed leaves get validity 730d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in /etc/default/rke2-server');
  }, 60_000);
});

describe('the admin kubeconfig rke2.yaml after an admin rotation', () => {
  const KUBECONFIG = 'etc/rancher/rke2/rke2.yaml';

  test('after the restart it embeds the new client-admin certificate, and nothing is reported', async () => {
    const { run, report, root } = await rotate(selfSigned, ['--service', 'admin']);
    expect(run.code).toBe(0);
    const admin = report.files.find((f) => f.id === 'client-admin')!;
    expect(embeddedClientSerials(await fs.readFile(join(root, KUBECONFIG), 'utf8'))).toEqual([admin.newSerial]);
    expect(report.warnings ?? []).toEqual([]);
  }, 60_000);

  test('a restart that leaves it stale is a warning, not a rollback (the old admin certificate stays valid)', async () => {
    const { run, report, root } = await rotate(selfSigned, ['--service', 'admin'], { faults: { skipKubeconfigRewrite: true } });
    expect(run.code).toBe(0);
    const admin = report.files.find((f) => f.id === 'client-admin')!;
    expect(embeddedClientSerials(await fs.readFile(join(root, KUBECONFIG), 'utf8'))).not.toEqual([admin.newSerial]);
    const warning = `/${KUBECONFIG} does not embed the new client-admin certificate (serial ${admin.newSerial}`;
    expect(report.warnings?.some((w) => w.startsWith(warning))).toBe(true);
    expect(run.stderr).toContain(`certrotator: warning: ${warning}`);
  }, 60_000);

  test('absent (rke2 writes it elsewhere with write-kubeconfig): nothing to check, nothing reported', async () => {
    const { run, report } = await rotate(selfSigned, ['--service', 'admin'], { prepare: (root) => fs.rm(join(root, KUBECONFIG)), faults: { skipKubeconfigRewrite: true } });
    expect(run.code).toBe(0);
    expect(report.warnings ?? []).toEqual([]);
  }, 60_000);

  test('--no-restart says rke2.yaml is stale until rke2-server restarts', async () => {
    const root = join(work, `run-${n++}`);
    await copyDir(selfSigned.root, root);
    const run = await runCli(['node', 'rotate', '--host-root', root, '--distribution', 'rke2', '--service', 'admin', '--no-restart']);
    outputs.push(run);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`certrotator: warning: /${KUBECONFIG} still embeds the old client-admin certificate until rke2-server restarts`);
  }, 60_000);
});
