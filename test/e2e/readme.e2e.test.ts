// Issue 5: every command README.md shows is run for real, so the README cannot
// drift from what works. `npm ci`, `npm test` and `npm run demo` run in CI
// (.ci/run); this suite runs the rest, as the README writes them, with only the
// substitutions a test needs (the built binaries' paths, --host-root on a
// fixture tree, a kubeconfig, a shorter timeout).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { SimulatedFleet } from '../../src/simulation/fleet.js';
import { rke2Server, rkeNode, type FixtureNode } from '../../src/simulation/fixtures.js';
import { SimulatedNode } from '../../src/simulation/node.js';
import { stopCluster } from '../cluster/cluster.js';
import { kubectl, kubectlOk, kubectlPath } from '../cluster/kubectl.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { REPO_ROOT } from '../cluster/paths.js';
import { processesMentioning } from '../cluster/processes.js';
import type { ControllerProcess } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { allIn, fleetDebug, getJson, nodeRotations, pemSerial, runPhases, servedPem, startFleetAndController, stopFleetAndController } from './support/rotation.js';
import { inBlock, runIp } from '../../src/simulation/loopback.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const NODE = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
const HELM = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
const NAMESPACE = 'certrotator-system';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const SERVERS = nodes.filter((n) => n.roles.includes('etcd') || n.roles.includes('controlplane')).map((n) => n.name).sort();
// This suite's own loopback range for the simulated components (see rotation.e2e.test.ts).
const hostIP = (ip: string): string => inBlock(ip, 80);

const work = mkdtempSync(join(tmpdir(), 'readme-e2e-'));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command run asynchronously from the repo root (simulated nodes answer TLS from this very process). */
function sh(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 240_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      process.kill(child.pid!, 'SIGTERM');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

const ok = (r: Ran): Ran => {
  expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
  return r;
};
const columns = (line: string | undefined): string[] => (line ?? '').trim().split(/\s{2,}/);
const readmeHas = (line: string): void => expect(README).toContain(line);

/** `certrotator node …` from the repo, as the README says (`npx tsx src/cli/main.ts node …`). */
const certrotator = (args: string[]): Promise<Ran> => sh(NODE, ['--import', 'tsx', 'src/cli/main.ts', ...args]);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('README "Watching a rotation", on examples/rotate-one-service.yaml run by a real controller and agents', () => {
  const NAME = 'rotate-api-server';
  let fleet: SimulatedFleet | undefined;
  let controller: ControllerProcess | undefined;

  beforeAll(async () => {
    await installCrds();
    ({ fleet, controller } = await startFleetAndController({
      workDir: join(work, 'fleet'), distribution: 'rke2', nodes: nodes.map((n) => ({ name: n.name, ip: hostIP(n.ip), roles: n.roles })), controllerId: 'readme-a', leaseName: 'readme-controller',
    }));
  }, 180_000);

  afterAll(async () => {
    await stopFleetAndController(fleet, controller, { prefix: NAME });
  }, 120_000);

  it('kubectl get certrotations -w, kubectl wait, kubectl get noderotations, kubectl get events', async () => {
    // The example as it is: no nodeSelector, so its name is the README's own.
    const example = parseAllDocuments(readFileSync(join(REPO_ROOT, 'examples', 'rotate-one-service.yaml'), 'utf8')).map((d) => d.toJS());
    expect(example).toHaveLength(1);
    expect(example[0].metadata.name).toBe(NAME);
    expect(example[0].spec.strategy?.nodeSelector).toBeUndefined();
    expect(await kubectlOk(['apply', '-f', join(REPO_ROOT, 'examples', 'rotate-one-service.yaml')])).toContain(`certificaterotation.certrotator.io/${NAME} created`);

    // kubectl get certrotations -w: the header and the row appear; then the child we started is ended by its PID.
    readmeHas('kubectl get certrotations -w ');
    const watch = spawn(kubectlPath(), [`--kubeconfig=${process.env.KUBECONFIG}`, 'get', 'certrotations', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let watched = '';
    watch.stdout.on('data', (d: Buffer) => (watched += d.toString()));
    watch.stderr.on('data', (d: Buffer) => (watched += d.toString()));
    const exited = new Promise<void>((resolve) => watch.on('close', () => resolve()));
    try {
      const deadline = Date.now() + 30_000;
      while (!(/^NAME\s+SCOPE\s+SERVICE\s+PHASE\s+PROGRESS\s+CURRENT\s+AGE\s*$/m.test(watched) && new RegExp(`^${NAME}\\s+Service\\s+api-server\\s`, 'm').test(watched))) {
        if (Date.now() > deadline) throw new Error(`kubectl get certrotations -w showed no header and row in 30 s:\n${watched}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(watch.exitCode).toBeNull(); // still watching
    } finally {
      process.kill(watch.pid!, 'SIGTERM');
      await exited;
    }
    expect(columns(watched.split('\n')[0])).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE']);

    // kubectl wait --for=condition=Ready certrotation/rotate-api-server --timeout=… (30m in the README)
    readmeHas(`kubectl wait --for=condition=Ready certrotation/${NAME} --timeout=30m`);
    const waited = await kubectl(['wait', '--for=condition=Ready', `certrotation/${NAME}`, '--timeout=150s']);
    if (waited.code !== 0) throw new Error(`${waited.stderr}\n${JSON.stringify((await getJson('certrotation', NAME))?.status, null, 1)}\n${fleetDebug(fleet, controller, nodes.map((n) => n.name))}`);
    expect(waited.stdout.trim()).toBe(`certificaterotation.certrotator.io/${NAME} condition met`);
    const status = (await getJson('certrotation', NAME)).status;
    // api-server matters to control-plane and worker nodes (Rancher's relevance table): here, every node; servers first.
    const TOUCHED = [...SERVERS, ...nodes.filter((n) => !SERVERS.includes(n.name) && n.roles.includes('worker')).map((n) => n.name).sort()];
    expect(TOUCHED).toHaveLength(nodes.length);
    expect(status).toMatchObject({ phase: 'Succeeded', progress: `${TOUCHED.length}/${TOUCHED.length}` });
    expect(await runPhases(NAME, TOUCHED)).toEqual(allIn(TOUCHED, 'Rotated'));
    expect(status.nodes).toEqual([]);

    // kubectl get noderotations: NODE ROLE PHASE AGE, one Rotated row per node touched.
    readmeHas('kubectl get noderotations ');
    const table = (await kubectlOk(['get', 'noderotations'])).trim().split('\n');
    expect(columns(table[0])).toEqual(['NAME', 'NODE', 'ROLE', 'PHASE', 'AGE']);
    const mine = await nodeRotations(NAME);
    expect(mine.map((nr) => nr.spec.nodeName).sort()).toEqual([...TOUCHED].sort());
    for (const nr of mine) {
      const row = table.find((l) => l.startsWith(`${nr.metadata!.name} `));
      expect(columns(row).slice(1, 4)).toEqual([nr.spec.nodeName, nr.spec.role, 'Rotated']);
      // "status.files has every file's old/new serial": every api-server file on a server is renewed.
      const files = nr.status!.files ?? [];
      for (const f of files) expect([f.path, f.oldSerial, f.newSerial]).toEqual([f.path, expect.stringMatching(/^[0-9a-f]+$/i), expect.stringMatching(/^[0-9a-f]+$/i)]);
      const api = files.filter((f) => f.service === 'api-server');
      if (SERVERS.includes(nr.spec.nodeName)) expect(api.map((f) => f.path).sort()).toEqual(['client-kube-apiserver.crt', 'serving-kube-apiserver.crt'].map((f) => `/var/lib/rancher/rke2/server/tls/${f}`));
      for (const f of api) expect([f.path, f.newSerial === f.oldSerial]).toEqual([f.path, false]);
    }

    // kubectl get events --field-selector involvedObject.kind=CertificateRotation
    readmeHas('kubectl get events --field-selector involvedObject.kind=CertificateRotation');
    const events = (await kubectlOk(['get', 'events', '--field-selector', 'involvedObject.kind=CertificateRotation'])).trim().split('\n');
    expect(columns(events[0])).toEqual(['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
    const ours = events.filter((l) => l.includes(`certificaterotation/${NAME}`));
    // Each touched node is named in a Normal Event of its own ("node w1 (worker) rotated in 3s") or in
    // one that workers within 5 s share ("2 worker nodes rotated: w1 in 3s, w2 in 4s").
    const named = (s: string) => new RegExp(`(node ${s} |[:,] ${s}( in \\d+s)?(,|$))`);
    for (const s of TOUCHED) expect([s, ours.some((l) => named(s).test(l.trimEnd()) && /\bNormal\b/.test(l))]).toEqual([s, true]);
  }, 240_000);
});

describe('README "Offline recovery": certrotator node check / rotate on fixture host trees', () => {
  const IP = runIp(100, 1);
  const RKE_IP = runIp(100, 2);
  let rke2: FixtureNode;
  let rke: FixtureNode;

  beforeAll(async () => {
    rke2 = await rke2Server(join(work, 'rke2'), { nodeName: 'server-1', nodeIP: IP });
    rke = await rkeNode(join(work, 'rke'), { nodeName: 'rke-1', nodeIP: RKE_IP, roles: ['etcd', 'controlplane', 'worker'], withOptional: true });
  }, 60_000);

  it('certrotator node check --distribution rke2', async () => {
    readmeHas('certrotator node check  --distribution rke2 ');
    const r = ok(await certrotator(['node', 'check', '--distribution', 'rke2', '--host-root', rke2.root]));
    const lines = r.stdout.trim().split('\n');
    expect(columns(lines[0])).toEqual(['SERVICE', 'PATH', 'SUBJECT', 'ISSUER', 'SERIAL', 'NOT AFTER', 'DAYS LEFT', 'STATUS']);
    const rows = lines.slice(1).map(columns);
    expect(rows.map((c) => c[1])).toContain('var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt');
    for (const c of rows) {
      expect(c).toHaveLength(8);
      expect(Number(c[6])).toBeGreaterThan(300);
      expect(c[7]).toBe('OK');
    }
    expect(r.stdout).not.toContain('PRIVATE KEY');
  }, 60_000);

  it('certrotator node rotate --distribution rke2 --all (restarts through the simulated node, then verifies what it serves)', async () => {
    readmeHas('certrotator node rotate --distribution rke2 --all ');
    const served = async (): Promise<string> => pemSerial(await servedPem(IP, 6443));
    const sim = new SimulatedNode(rke2, { address: IP });
    await sim.start();
    let r: Ran;
    let before: string;
    let after: string;
    try {
      before = await served();
      r = await certrotator(['node', 'rotate', '--distribution', 'rke2', '--all', '--host-root', rke2.root, '--restarter', 'simulation', '--simulation-url', sim.controlUrl, '--node-ip', IP, '--loopback-address', IP, '--verify-timeout', '20']);
      after = await served();
    } finally {
      await sim.stop();
    }
    ok(r);
    const lines = r.stdout.trim().split('\n');
    expect(columns(lines[0])).toEqual(['SERVICE', 'PATH', 'OLD SERIAL', 'NEW SERIAL', 'NOT AFTER', 'SERVED', 'STATUS', 'NOTE']);
    expect(lines.at(-1)).toMatch(/^backup: var\/lib\/rancher\/rke2\/server\/tls-\d+$/);
    const rows = lines.slice(1, -1).map(columns);
    expect(rows.length).toBeGreaterThan(20);
    for (const c of rows) expect(c[3]).not.toBe(c[2]);
    const apiserver = rows.find((c) => c[1] === 'var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt')!;
    expect(after).not.toBe(before);
    expect(after).toBe(apiserver[3]!.toLowerCase().replace(/^0+(?=.)/, ''));
    expect(apiserver[5]).toBe('yes');
    // rke2's own leaf lifetime, and where it came from (no CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS on this tree).
    expect(apiserver[7]).toMatch(/^validity 365d \(default; CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS not set/);
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
  }, 120_000);

  it('certrotator node rotate --distribution rke --service kubelet --no-restart -o json', async () => {
    readmeHas('certrotator node rotate --distribution rke --service kubelet --no-restart -o json');
    const SSL = join(rke.root, 'etc', 'kubernetes', 'ssl');
    const kubelet = `kube-kubelet-${RKE_IP.replaceAll('.', '-')}`;
    const keys = ['kube-node-key.pem', `${kubelet}-key.pem`];
    const keysBefore = keys.map((k) => readFileSync(join(SSL, k), 'utf8'));
    const r = ok(await certrotator(['node', 'rotate', '--distribution', 'rke', '--service', 'kubelet', '--no-restart', '-o', 'json', '--host-root', rke.root]));
    const report = JSON.parse(r.stdout) as { distribution: string; files: { service: string; path: string; oldSerial: string; newSerial: string }[]; backupDir: string };
    expect(report.distribution).toBe('rke');
    expect(report.backupDir).toMatch(/^etc\/kubernetes\/ssl-backup-\d+$/);
    expect(report.files.map((f) => f.path).sort()).toEqual(
      [`${kubelet}.pem`, 'kube-node.pem'].map((f) => `etc/kubernetes/ssl/${f}`),
    );
    for (const f of report.files) {
      expect(f.service).toBe('kubelet');
      expect(f.newSerial).toMatch(/^[0-9a-f]+$/i);
      expect(f.newSerial).not.toBe(f.oldSerial);
    }
    // New keys too, beside the certificates.
    keys.forEach((k, i) => expect([k, readFileSync(join(SSL, k), 'utf8') === keysBefore[i]]).toEqual([k, false]));
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
  }, 60_000);
});

describe('README "Install"', () => {
  const kc = `--kubeconfig=${process.env.KUBECONFIG}`;
  const namespaceGone = async (): Promise<void> => {
    // The chart suite removes the same objects without waiting; a Terminating namespace would refuse the install.
    await kubectlOk(['wait', '--for=delete', `namespace/${NAMESPACE}`, '--timeout=120s']).catch(async (e: Error) => {
      if ((await kubectl(['get', 'namespace', NAMESPACE])).code !== 0) return;
      throw e;
    });
  };

  beforeAll(async () => {
    await installCrds();
    await namespaceGone();
  }, 150_000);

  afterAll(async () => {
    await sh(HELM, ['uninstall', 'certrotator', '-n', NAMESPACE, kc]);
    await kubectl(['delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=120s']);
  }, 180_000);

  it('helm install certrotator charts/certrotator -n certrotator-system --create-namespace; helm uninstall removes it', async () => {
    readmeHas('helm install certrotator charts/certrotator -n certrotator-system --create-namespace');
    const r = ok(await sh(HELM, ['install', 'certrotator', 'charts/certrotator', '-n', 'certrotator-system', '--create-namespace', kc]));
    expect(r.stdout).toMatch(/^STATUS: deployed$/m);
    expect(await kubectlOk(['get', '-n', NAMESPACE, 'deployment/certrotator-controller', 'daemonset/certrotator-agent', '-o', 'name'])).toBe('deployment.apps/certrotator-controller\ndaemonset.apps/certrotator-agent\n');
    ok(await sh(HELM, ['uninstall', 'certrotator', '-n', NAMESPACE, kc]));
    expect((await kubectl(['get', '-n', NAMESPACE, 'deployment/certrotator-controller'])).code).not.toBe(0);
    expect((await kubectl(['get', 'clusterrole', '-l', 'app.kubernetes.io/instance=certrotator', '-o', 'name'])).stdout).toBe('');
    // The CRDs (crds/ of the chart) stay, as Helm leaves them: every other suite needs them.
    await kubectlOk(['get', 'crd', 'certificaterotations.certrotator.io']);
  }, 120_000);

  it('kubectl apply -k deploy/ creates the same defaults as plain manifests', async () => {
    readmeHas('kubectl apply -k deploy/');
    const out = await kubectlOk(['apply', '-k', join(REPO_ROOT, 'deploy')]);
    for (const o of ['namespace/certrotator-system', 'deployment.apps/certrotator-controller', 'daemonset.apps/certrotator-agent', 'customresourcedefinition.apiextensions.k8s.io/certificaterotations.certrotator.io']) {
      expect(out).toMatch(new RegExp(`^${o.replace(/\./g, '\\.')} (created|configured|unchanged)$`, 'm'));
    }
    await kubectlOk(['rollout', 'status', '-n', NAMESPACE, 'deployment/certrotator-controller', '--timeout=120s']);
    // Removed again, all but the CRDs (`kubectl delete -k deploy/` would take every
    // suite's CertificateRotations with them), and the namespace is waited out.
    const objs = parseAllDocuments(await kubectlOk(['kustomize', join(REPO_ROOT, 'deploy')])).map((d) => d.toJS()).filter((o) => o && o.kind !== 'CustomResourceDefinition');
    expect(objs.length).toBeGreaterThan(5);
    await kubectlOk(['delete', '--wait=false', '-f', '-'], { input: objs.map((o) => stringify(o)).join('---\n') });
    await namespaceGone();
  }, 240_000);
});

describe('README "The test control plane": cluster:up and cluster:down', () => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-cluster-'));

  afterAll(async () => {
    await stopCluster(dir); // only if the test did not get as far as cluster:down
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('npm run cluster:up -- --dir D --servers 1 --workers 1 prints a working export KUBECONFIG=; npm run cluster:down -- --dir D leaves nothing running', async () => {
    readmeHas('npm run cluster:up [-- --servers N --workers N');
    readmeHas('npm run cluster:down');
    const up = ok(await sh('npm', ['run', 'cluster:up', '--', '--dir', dir, '--servers', '1', '--workers', '1'], {}, 300_000));
    const m = /^export KUBECONFIG=(\S+)$/m.exec(up.stdout);
    expect(m).not.toBeNull();
    const kubeconfig = m![1]!;
    expect(kubeconfig.startsWith(dir)).toBe(true);
    const got = await sh(kubectlPath(), ['get', 'nodes', '-o', 'name'], { KUBECONFIG: kubeconfig });
    expect(ok(got).stdout.trim().split('\n').sort()).toEqual(['node/rke2-server-1', 'node/rke2-worker-1']);
    expect(processesMentioning(dir).length).toBeGreaterThan(0);

    ok(await sh('npm', ['run', 'cluster:down', '--', '--dir', dir], {}, 120_000));
    expect(processesMentioning(dir)).toEqual([]);
    expect((await sh(kubectlPath(), ['get', 'nodes', '--request-timeout=5s'], { KUBECONFIG: kubeconfig })).code).not.toBe(0);
  }, 420_000);
});
