// Starts and stops a real control plane on loopback: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, with simulated RKE2/RKE nodes.
// The same functions back `npm run cluster:up|down` and the jest global setup.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries } from './binaries.js';
import { writeKwokConfig } from './kwok-config.js';
import { createNodes, layoutNodes, type SimulatedNode, type Topology, DEFAULT_TOPOLOGY } from './nodes.js';
import { defaultClusterDir, readVersions } from './paths.js';
import { ensureClusterPki, writeKubeconfig } from './pki.js';
import {
  ComponentStartError,
  freePort,
  isRunning,
  readPids,
  sleep,
  startProcess,
  stopProcesses,
  waitHealthy,
  writePids,
  type HealthProbe,
  type RecordedProcess,
} from './processes.js';

export interface ClusterOptions {
  dir?: string;
  /** Nodes to create; `null` creates none. Default: 3 RKE2 servers and 3 workers. */
  topology?: Topology | null;
  binDir?: string;
  /** Called with each start-up step, for progress output. */
  onProgress?: (message: string) => void;
}

export interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
}

export interface ClusterState {
  dir: string;
  binDir: string;
  kubeconfig: string;
  server: string;
  ports: Ports;
  nodes: SimulatedNode[];
  processes: RecordedProcess[];
}

const STATE_FILE = 'state.json';
const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'];
const OWN_ENTRIES = [
  'etcd-data', 'pki', 'apiserver-certs', 'kcm-certs', 'kubeconfig', 'kwok.yaml', STATE_FILE,
  ...COMPONENTS.map((c) => `${c}.log`),
];
const START_ATTEMPTS = 3;

export function readClusterState(dir = defaultClusterDir()): ClusterState | undefined {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

export function clusterIsRunning(state: ClusterState): boolean {
  return state.processes.length > 0 && state.processes.every(isRunning);
}

/** Stops every process recorded for the cluster in `dir` (by PID) and removes its state. */
export async function stopCluster(dir = defaultClusterDir()): Promise<void> {
  // One at a time, kwok first, etcd last: kube-apiserver exits in about a second
  // once its clients have gone, but stopped together with etcd it waits out the
  // whole grace period.
  for (const proc of [...readPids(dir)].reverse()) await stopProcesses([proc]);
  writePids(dir, []);
  rmSync(join(dir, STATE_FILE), { force: true });
}

/**
 * Starts a cluster in `dir` and returns when every component is healthy and the
 * nodes are Ready and untainted. A running cluster in the same dir is reused.
 * On any failure everything started is stopped again before the error is thrown.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<ClusterState> {
  const dir = opts.dir ?? defaultClusterDir();
  const progress = opts.onProgress ?? (() => {});
  const existing = readClusterState(dir);
  if (existing && clusterIsRunning(existing)) {
    progress(`cluster in ${dir} is already running`);
    return existing;
  }
  await stopCluster(dir); // leftovers of a crashed or interrupted run
  const binDir = opts.binDir ?? (await ensureBinaries());

  for (let attempt = 1; ; attempt++) {
    try {
      const state = await startComponents(dir, binDir, progress);
      const topology = opts.topology === undefined ? DEFAULT_TOPOLOGY : opts.topology;
      if (topology) {
        progress(`creating ${topology.servers + topology.workers} simulated ${topology.distribution} nodes`);
        const core = coreClient(state.kubeconfig);
        state.nodes = layoutNodes(topology);
        // kwok and the node lifecycle controller (20 requests/s) make about ten nodes a second Ready on 2 cores.
        await createNodes(core, state.nodes, topology.kubernetesVersion ?? readVersions().k8s, Math.max(120_000, state.nodes.length * 150));
        await waitDefaultServiceAccount(core);
      }
      writeFileSync(join(dir, STATE_FILE), JSON.stringify(state, null, 2));
      progress(`cluster ready: KUBECONFIG=${state.kubeconfig}`);
      return state;
    } catch (err) {
      await stopCluster(dir);
      // Free ports are picked just before use; another process can take one in
      // between. That is not a failure of the cluster: pick new ports and retry.
      const portTaken = err instanceof ComponentStartError && /address already in use/i.test(err.logTail);
      if (!portTaken || attempt >= START_ATTEMPTS) throw err;
      progress(`${(err as ComponentStartError).component}: port taken, retrying with new ports`);
    }
  }
}

export function coreClient(kubeconfig: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

async function allocatePorts(): Promise<Ports> {
  const ports: number[] = [];
  while (ports.length < 6) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const [etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok] = ports as [number, number, number, number, number, number];
  return { etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok };
}

async function startComponents(dir: string, binDir: string, progress: (m: string) => void): Promise<ClusterState> {
  // A fresh cluster every time: stale etcd data would bring back objects of a
  // previous run. Only what this harness writes is removed, never the dir itself.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const entry of OWN_ENTRIES) rmSync(join(dir, entry), { recursive: true, force: true });
  const pki = ensureClusterPki(join(dir, 'pki'));
  const ports = await allocatePorts();
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const kubeconfig = join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, server, pki);
  const kwokConfig = join(dir, 'kwok.yaml');
  writeKwokConfig(kwokConfig);

  const procs: RecordedProcess[] = [];
  const start = async (name: string, args: string[], probe: HealthProbe, timeoutMs: number): Promise<void> => {
    progress(`starting ${name}`);
    const proc = startProcess(name, join(binDir, name), args, join(dir, `${name}.log`));
    procs.push(proc);
    writePids(dir, procs); // recorded before waiting, so an interrupted start can be cleaned up
    await waitHealthy(proc, probe, timeoutMs);
  };

  const etcdUrl = `http://127.0.0.1:${ports.etcdClient}`;
  const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
  await start(
    'etcd',
    [
      '--name=certrotator-test',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=certrotator-test=${peerUrl}`,
      '--listen-metrics-urls=',
      '--unsafe-no-fsync=true',
      '--auto-compaction-retention=1',
      '--quota-backend-bytes=2147483648',
      '--log-level=warn',
    ],
    { url: `${etcdUrl}/health` },
    30000,
  );

  await start(
    'kube-apiserver',
    [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      // Loopback advertise needs the endpoint reconciler off (kubernetes#121942).
      '--advertise-address=127.0.0.1',
      '--endpoint-reconciler-type=none',
      `--secure-port=${ports.apiserver}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saKey}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--authorization-mode=Node,RBAC',
      '--allow-privileged=true',
      '--service-cluster-ip-range=10.96.0.0/16',
      // Webhooks, conversion webhooks and APIServices are dialled at their
      // Service's endpoints (an EndpointSlice address), not its ClusterIP: with no
      // kube-proxy here a ClusterIP leads nowhere. The same flag reaches all
      // three (cmd/kube-apiserver buildServiceResolver; test/secrets/webhook-server.ts).
      '--enable-aggregator-routing=true',
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      '--profiling=false',
    ],
    { url: `${server}/readyz`, ca: pki.caCert },
    120000,
  );

  await Promise.all([
    start(
      'kube-controller-manager',
      [
        `--kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.controllerManager}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        '--leader-elect=false',
        // Each controller with its own ServiceAccount, as RKE2, RKE and kubeadm run it: the
        // garbage collector is then system:serviceaccount:kube-system:generic-garbage-collector,
        // which the chart's NodeRotation policy admits.
        '--use-service-account-credentials=true',
        `--root-ca-file=${pki.caCert}`,
        `--service-account-private-key-file=${pki.saKey}`,
        // CSRs approved in the cluster are signed with the cluster CA.
        `--cluster-signing-cert-file=${pki.caCert}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
      ],
      { url: `https://127.0.0.1:${ports.controllerManager}/healthz`, insecure: true },
      60000,
    ),
    start(
      'kube-scheduler',
      [
        `--kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${ports.scheduler}`,
        '--leader-elect=false',
        '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
      ],
      { url: `https://127.0.0.1:${ports.scheduler}/healthz`, insecure: true },
      60000,
    ),
    start(
      'kwok',
      [
        `--kubeconfig=${kubeconfig}`,
        `--config=${kwokConfig}`,
        '--manage-all-nodes=false',
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        '--node-ip=127.0.0.1',
        '--node-name=localhost',
        `--node-port=${ports.kwok}`,
        `--server-address=127.0.0.1:${ports.kwok}`,
        '--node-lease-duration-seconds=40',
      ],
      { url: `http://127.0.0.1:${ports.kwok}/healthz` },
      60000,
    ),
  ]);

  return { dir, binDir, kubeconfig, server, ports, nodes: [], processes: procs };
}

async function waitDefaultServiceAccount(core: CoreV1Api, timeoutMs = 60000): Promise<void> {
  // Pods cannot be created in a namespace before the controller-manager made its
  // `default` ServiceAccount (ServiceAccount admission is on, as in a real cluster).
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return;
    } catch {
      await sleep(250);
    }
  }
  throw new Error('ServiceAccount default/default was not created by kube-controller-manager');
}
