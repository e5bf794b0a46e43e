// `npm run demo`: the whole product on one machine. Builds (or reuses) the
// Kubernetes binaries and starts an RKE2 cluster of 3 servers and 3 workers whose
// control plane is real (test/realnode: each node a network namespace; etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler from each server's
// RKE2 tree; needs root for the namespaces), runs the controller and one agent per
// node, applies a CertificateRotation with kubectl, shows its progress live and
// ends with a before-and-after table of every certificate it renewed.
// `--simulated`: the earlier demo, with nodes simulated from the catalog on
// loopback (no root needed). `--keep` leaves everything running to explore.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { CertificateRotation } from '../src/api/certificaterotation.js';
import type { NodeRotation } from '../src/api/noderotation.js';
import { SimulatedFleet } from '../src/simulation/fleet.js';
import { RealRke2Cluster } from '../test/realnode/cluster.js';
import { ensureBinaries } from '../test/cluster/binaries.js';
import { startCluster, stopCluster } from '../test/cluster/cluster.js';
import { kubectl, kubectlOk } from '../test/cluster/kubectl.js';
import { cacheRoot, REPO_ROOT } from '../test/cluster/paths.js';
import { cliEntry } from '../src/simulation/cli-entry.js';

const ROTATION = 'demo-rotate-all';
const started = Date.now();
const since = (t = started): string => `${((Date.now() - t) / 1000).toFixed(1)}s`;
const say = (text: string): void => void process.stdout.write(`${text}\n`);
const step = (n: number, text: string): void => say(`\n[${n}/6] ${text}`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function startController(kubeconfig: string): ChildProcess {
  return spawn(
    process.execPath,
    [...cliEntry(), 'controller', `--kubeconfig=${kubeconfig}`,
      '--metrics-addr=127.0.0.1:0', '--lease-namespace=default', '--lease-name=certrotator-demo'],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

async function getJson<T>(args: string[]): Promise<T | undefined> {
  const r = await kubectl([...args, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
}

interface DemoCluster {
  readonly kubeconfig: string;
  stop(): Promise<void>;
}

// Steps 2-4 with a real control plane on every server.
async function realCluster(binDir: string): Promise<DemoCluster> {
  step(2, 'starting 3 RKE2 servers (real etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and 3 workers, each in its own network namespace');
  const work = mkdtempSync(join(tmpdir(), 'certrotator-demo-'));
  const cluster = await RealRke2Cluster.start({ workDir: work, binDir, servers: 3, workers: 3, onProgress: (m) => say(`      ${m}`) });
  const stop = async () => {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    step(3, 'the nodes: each has /var/lib/rancher/rke2 with RKE2\'s CAs and certificates (ECDSA P-256, 365 days), served by the real components');
    for (const n of cluster.nodes) say(`      ${n.name.padEnd(14)} ${n.ip.padEnd(14)} ${(n.server ? 'etcd,controlplane' : 'worker').padEnd(18)} netns ${n.netns}  data dir ${n.dataDir}`);
    step(4, 'starting the controller and one agent per node (inside the node, restarting through its systemctl)');
    await cluster.startAgents();
    return { kubeconfig: cluster.kubeconfig, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

// Steps 2-4 with nodes simulated from the catalog (`--simulated`).
async function simulatedCluster(binDir: string): Promise<DemoCluster> {
  step(2, 'starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback');
  const clusterDir = join(cacheRoot(), 'demo');
  const cluster = await startCluster({
    dir: clusterDir,
    binDir,
    topology: { distribution: 'rke2', servers: 3, workers: 3, ipPrefix: '127.0' },
    onProgress: (m) => say(`      ${m}`),
  });
  const work = mkdtempSync(join(tmpdir(), 'certrotator-demo-'));
  let fleet: SimulatedFleet | undefined;
  const stop = async () => {
    await fleet?.stop();
    await stopCluster(clusterDir);
    rmSync(work, { recursive: true, force: true });
  };
  try {
    say(`      kubectl: ${join(binDir, 'kubectl')} --kubeconfig ${cluster.kubeconfig}`);
    await kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', join(REPO_ROOT, 'crds')], { kubeconfig: cluster.kubeconfig });
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificaterotations.certrotator.io', 'crd/noderotations.certrotator.io'], { kubeconfig: cluster.kubeconfig });

    step(3, 'laying out each node\'s /var/lib/rancher/rke2 with RKE2\'s CAs and certificates (ECDSA P-256, 365 days)');
    fleet = await SimulatedFleet.create({
      workDir: work,
      distribution: 'rke2',
      nodes: cluster.nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.roles })),
      kubeconfig: cluster.kubeconfig,
    });
    for (const n of cluster.nodes) say(`      ${n.name.padEnd(14)} ${n.ip.padEnd(11)} ${n.roles.join(',').padEnd(18)} host root ${fleet.hostRoot(n.name)}`);

    step(4, 'starting the controller and one agent per node');
    await fleet.start();
    return { kubeconfig: cluster.kubeconfig, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false }, simulated: { type: 'boolean', default: false } } });
  say(`certrotator demo: rotate every certificate of ${values.simulated ? 'a simulated' : 'an'} RKE2 cluster (3 servers, 3 workers)`);

  step(1, 'test control plane binaries (the first build compiles Kubernetes from Go modules: several minutes, progress below)');
  const binDir = await ensureBinaries();
  process.env.CERTROTATOR_BIN_DIR = binDir;
  const cluster = await (values.simulated ? simulatedCluster(binDir) : realCluster(binDir));
  process.env.KUBECONFIG = cluster.kubeconfig;
  const controller = startController(cluster.kubeconfig);
  let exitCode = 1;
  try {
    step(5, `kubectl apply: CertificateRotation ${ROTATION} (scope All: every service certificate, same CAs)`);
    const manifest = {
      apiVersion: 'certrotator.io/v1alpha1',
      kind: 'CertificateRotation',
      metadata: { name: ROTATION },
      spec: { scope: 'All', strategy: { maxUnavailable: 1, nodeTimeout: '3m', onFailure: 'Rollback' } },
    };
    say(stringify(manifest).trimEnd().replace(/^/gm, '      '));
    await kubectlOk(['apply', '-f', '-'], { input: stringify(manifest) });
    const applied = Date.now();
    const seen = new Map<string, string>();
    let last = '';
    let rotation: CertificateRotation | undefined;
    for (;;) {
      rotation = await getJson<CertificateRotation>(['get', 'certrotation', ROTATION]);
      const st = rotation?.status;
      const line = `${st?.phase ?? 'Pending'} ${st?.progress ?? ''} ${st?.current ? `current=${st.current}` : ''}`.trim();
      if (line !== last) say(`      +${since(applied).padStart(6)}  ${line}`);
      last = line;
      const nodeRotations = (await getJson<{ items: NodeRotation[] }>(['get', 'noderotations', '-l', `certrotator.io/rotation=${ROTATION}`]))?.items ?? [];
      for (const nr of nodeRotations) {
        const state = `${nr.status?.phase ?? 'Pending'}${nr.status?.step ? `/${nr.status.step}` : ''}`;
        if (seen.get(nr.spec.nodeName) === state) continue;
        seen.set(nr.spec.nodeName, state);
        say(`      +${since(applied).padStart(6)}    ${nr.spec.nodeName.padEnd(14)} ${state}${nr.status?.phase === 'Rotated' ? `  (${nr.status.files?.length ?? 0} files)` : ''}`);
      }
      const ready = st?.conditions?.find((c) => c.type === 'Ready');
      const stalled = st?.conditions?.find((c) => c.type === 'Stalled');
      if (ready?.status === 'True' || stalled?.status === 'True') break;
      if (Date.now() - applied > 8 * 60_000) throw new Error(`rotation not finished after 8 minutes: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    say('');
    say((await kubectlOk(['get', 'certrotations', '-o', 'wide'])).trimEnd().replace(/^/gm, '      '));
    const stalled = rotation?.status?.conditions?.find((c) => c.type === 'Stalled');
    if (stalled?.status === 'True') {
      say(`\nthe rotation stalled: ${stalled.message}`);
      return 1;
    }

    step(6, 'every certificate renewed (old and new serial from the agents\' reports; SERVED = the new one was seen on its port)');
    const items = (await getJson<{ items: NodeRotation[] }>(['get', 'noderotations', '-l', `certrotator.io/rotation=${ROTATION}`]))?.items ?? [];
    const rows = items
      .sort((a, b) => a.spec.nodeName.localeCompare(b.spec.nodeName))
      .flatMap((nr) =>
        (nr.status?.files ?? []).map((f) => [nr.spec.nodeName, f.service, f.path, f.oldSerial ?? '-', f.newSerial ?? '-', f.newNotAfter?.slice(0, 10) ?? '-', f.servedVerified ? 'yes' : '']),
      );
    say(table(['NODE', 'SERVICE', 'FILE', 'OLD SERIAL', 'NEW SERIAL', 'NOT AFTER', 'SERVED'], rows));
    say(`\n${rows.length} certificate files renewed on ${items.length} nodes in ${since()} (all steps).`);
    exitCode = 0;
    if (values.keep) {
      say(`\n--keep: cluster, controller and agents stay up until you press Ctrl-C. Try:\n  export KUBECONFIG=${cluster.kubeconfig}\n  ${join(binDir, 'kubectl')} get certrotations,noderotations`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    controller.kill('SIGTERM');
    await new Promise((r) => (controller.exitCode !== null ? r(undefined) : controller.once('exit', r)));
    await cluster.stop();
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
