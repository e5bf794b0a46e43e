// An RKE2 cluster whose control plane is real: each server is a network
// namespace (its own 127.0.0.1, a node IP on a bridge) running the real etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler from its own RKE2
// tree with RKE2's flags (rke2-layout.ts), three etcd members peering over TLS
// between the node IPs. Workers are namespaces with the rke2-agent stand-in.
// kwok is the kubelet for the API server; the rke2 supervisor and the kubelet's
// own ports are stand-ins (rke2-unit.ts). A load balancer in the root namespace
// fronts the three API servers; the controller, kwok and the agents use it.
//
// Every certrotator agent runs inside its node's namespace with host root `/`,
// the node's tree through --data-dir, and `systemctl` on its PATH being the
// node's stand-in: the production HostCommandExecutor path.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fs, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { clusterCas, rke2Agent, rke2Server } from '../../src/simulation/fixtures.js';
import { runCommand } from '../cluster/command.js';
import { writeKwokConfig } from '../cluster/kwok-config.js';
import { createNodes, type SimulatedNode } from '../cluster/nodes.js';
import { readVersions, REPO_ROOT } from '../cluster/paths.js';
import { freePort, isRunning, readPids, sleep, startProcess, stopProcesses, tail, writePids, type RecordedProcess } from '../cluster/processes.js';
import { installCrds } from '../e2e/support/crds.js';
import { createHostNetwork, destroyHostNetwork, inNode, type HostNetwork } from './netns.js';
import { LoadBalancer } from './load-balancer.js';
import { issueWithOpenssl, writePair } from './openssl.js';
import { etcdConfig, kubeconfigYaml, staticPods, tls, writeCredKubeconfigs, type ServerIdentity } from './rke2-layout.js';
import { readUnitConfig, runningPod, unitConfigPath, unitLogFile, unitPidFile, type UnitConfig } from './unit-config.js';

export interface RealNode {
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
  readonly server: boolean;
  // <workDir>/<name>: bin/ (systemctl), run/ (unit, static pods, logs), host/ (the tree).
  readonly dir: string;
  // Absolute: <dir>/host/var/lib/rancher/rke2.
  readonly dataDir: string;
  readonly config: UnitConfig;
}

export interface RealClusterOptions {
  readonly workDir: string;
  readonly binDir: string;
  readonly servers: number;
  readonly workers: number;
  readonly onProgress?: (m: string) => void;
}

const DATA_DIR = 'var/lib/rancher/rke2';
const API_PORT = 6443;

export class RealRke2Cluster {
  readonly agents = new Map<string, { child: ChildProcess; log: string }>();
  private constructor(
    readonly o: RealClusterOptions,
    readonly network: HostNetwork,
    readonly nodes: readonly RealNode[],
    readonly lb: LoadBalancer,
    // Admin identity of the tests (client-ca, system:masters) through the load balancer.
    readonly kubeconfig: string,
    private readonly procs: RecordedProcess[],
  ) {}

  get servers(): RealNode[] {
    return this.nodes.filter((n) => n.server);
  }

  static async start(o: RealClusterOptions): Promise<RealRke2Cluster> {
    const progress = o.onProgress ?? (() => {});
    await fs.mkdir(o.workDir, { recursive: true });
    const names = [...Array.from({ length: o.servers }, (_, i) => `rke2-server-${i + 1}`), ...Array.from({ length: o.workers }, (_, i) => `rke2-agent-${i + 1}`)];
    const network = await createHostNetwork({ stateFile: join(o.workDir, 'network.json'), nodes: names });
    const procs: RecordedProcess[] = [];
    const lb = new LoadBalancer(network.hosts.slice(0, o.servers).map((h) => ({ host: h.ip, port: API_PORT })), network.gatewayIP);
    try {
      progress(`network ${network.name}: ${network.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
      const nodes = await layOut(o, network);
      await lb.open();
      const kubeconfig = await testAdminKubeconfig(o.workDir, nodes[0]!, `https://${network.gatewayIP}:${lb.port}`);
      const cluster = new RealRke2Cluster(o, network, nodes, lb, kubeconfig, procs);
      progress('starting rke2-server on every server (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)');
      await Promise.all(cluster.servers.map((n) => cluster.systemctl(n, 'start')));
      await cluster.waitApiServers(180_000);
      progress('starting kwok and registering the nodes');
      await cluster.startKwok();
      await installCrds(kubeconfig);
      const core = cluster.core();
      const simNodes: SimulatedNode[] = nodes.map((n) => ({ name: n.name, ip: n.ip, roles: n.server ? ['etcd', 'controlplane'] : ['worker'], distribution: 'rke2' }));
      await createNodes(core, simNodes, readVersions().k8s, 180_000);
      progress('starting rke2-agent on every worker');
      await Promise.all(nodes.filter((n) => !n.server).map((n) => cluster.systemctl(n, 'start')));
      return cluster;
    } catch (e) {
      await teardown(o.workDir, procs, lb);
      throw e;
    }
  }

  core(): CoreV1Api {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    return kc.makeApiClient(CoreV1Api);
  }

  /** Runs the node's systemctl stand-in inside the node, as the agent would. */
  async systemctl(node: RealNode, verb: string): Promise<void> {
    const r = await runCommand('ip', inNode(this.hostOf(node), [join(node.dir, 'bin', 'systemctl'), verb, node.config.unit]).slice(1));
    if (r.code !== 0) throw new Error(`${node.name}: systemctl ${verb} ${node.config.unit} failed: ${r.stderr}\n${tail(join(node.dir, 'run', 'logs', `${node.config.unit}.log`))}`);
  }

  /** Runs a command inside the node's network namespace. */
  exec(node: RealNode, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCommand('ip', inNode(this.hostOf(node), argv).slice(1));
  }

  private hostOf(node: RealNode) {
    return this.network.hosts.find((h) => h.name === node.name)!;
  }

  async waitApiServers(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const n of this.servers) {
      for (;;) {
        const r = await runCommand(join(this.o.binDir, 'kubectl'), ['--kubeconfig', this.kubeconfig, '--server', `https://${n.ip}:${API_PORT}`, 'get', '--raw', '/readyz']);
        if (r.code === 0) break;
        if (Date.now() > deadline) throw new Error(`${n.name}: kube-apiserver not ready: ${r.stderr}\n${tail(join(n.dir, 'run', 'logs', 'kube-apiserver.log'))}\n${tail(join(n.dir, 'run', 'logs', 'etcd.log'))}`);
        await sleep(1000);
      }
    }
  }

  private async startKwok(): Promise<void> {
    const kwokConfig = join(this.o.workDir, 'kwok.yaml');
    writeKwokConfig(kwokConfig);
    const port = await freePort();
    const proc = startProcess('kwok', join(this.o.binDir, 'kwok'), [
      `--kubeconfig=${this.kubeconfig}`,
      `--config=${kwokConfig}`,
      '--manage-all-nodes=false',
      '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
      '--node-ip=127.0.0.1',
      '--node-name=localhost',
      `--node-port=${port}`,
      `--server-address=127.0.0.1:${port}`,
      '--node-lease-duration-seconds=40',
    ], join(this.o.workDir, 'kwok.log'));
    this.record(proc);
  }

  // Recorded in <workDir>/pids.json at once, so a crashed run can be cleaned up (stopRealCluster).
  private record(proc: RecordedProcess): void {
    this.procs.push(proc);
    writePids(this.o.workDir, this.procs);
  }

  /** Starts one certrotator agent per node, inside the node, on the production executor path. */
  async startAgents(env: Record<string, string> = {}): Promise<void> {
    const agentKubeconfig = this.kubeconfig;
    for (const n of this.nodes) {
      const log = join(n.dir, 'run', 'logs', 'certrotator-agent.log');
      const fd = openSync(log, 'a');
      try {
        const argv = inNode(this.hostOf(n), [
          'env', `PATH=${join(n.dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
          process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'agent',
          '--node-name', n.name,
          '--host-root', '/',
          '--data-dir', n.dataDir,
          '--kubeconfig', agentKubeconfig,
          '--health-port', '0',
          '--health-host', '127.0.0.1',
        ]);
        const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, ...env, NODE_OPTIONS: '' } });
        this.agents.set(n.name, { child, log });
        if (child.pid) this.record({ name: `${n.name}/certrotator-agent`, pid: child.pid, bin: process.execPath, log });
      } finally {
        closeSync(fd);
      }
    }
    // Each agent is ready once it logged that it watches its node.
    const deadline = Date.now() + 60_000;
    for (const [name, a] of this.agents) {
      while (!readFileSync(a.log, 'utf8').includes('watching NodeRotations')) {
        if (a.child.exitCode !== null || Date.now() > deadline) throw new Error(`agent of ${name} did not start:\n${tail(a.log)}`);
        await sleep(200);
      }
    }
  }

  async stopAgents(): Promise<void> {
    await Promise.all(
      [...this.agents.values()].map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }),
    );
    this.agents.clear();
  }

  async stop(): Promise<void> {
    await this.stopAgents();
    await teardown(this.o.workDir, this.procs, this.lb);
  }
}

// Every process a node started (its unit, its static pods) is recorded by PID in
// its run dir; only those PIDs are signalled, after checking what they run.
function nodeProcesses(workDir: string): RecordedProcess[] {
  const out: RecordedProcess[] = [];
  if (!existsSync(workDir)) return out;
  for (const node of readdirSync(workDir)) {
    if (!existsSync(unitConfigPath(join(workDir, node)))) continue;
    const config = readUnitConfig(join(workDir, node));
    const unitPid = existsSync(unitPidFile(config)) ? Number(readFileSync(unitPidFile(config), 'utf8')) : 0;
    if (unitPid) out.push({ name: `${node}/${config.unit}`, pid: unitPid, bin: process.execPath, log: unitLogFile(config) });
    for (const pod of config.staticPods) {
      const proc = runningPod(config, pod.name);
      if (proc) out.push(proc);
    }
  }
  return out;
}

async function teardown(workDir: string, procs: RecordedProcess[], lb: LoadBalancer | undefined): Promise<void> {
  await lb?.close();
  await stopProcesses([...procs, ...readPids(workDir), ...nodeProcesses(workDir)].filter(isRunning));
  await destroyHostNetwork(join(workDir, 'network.json'));
}

/** Stops whatever a (possibly crashed) run left in `workDir`: its processes by PID, then its network. */
export function stopRealCluster(workDir: string): Promise<void> {
  return teardown(workDir, [], undefined);
}

async function layOut(o: RealClusterOptions, network: HostNetwork): Promise<RealNode[]> {
  const hosts = network.hosts;
  const serverIds: ServerIdentity[] = hosts.slice(0, o.servers).map((h) => ({ name: h.name, ip: h.ip }));
  const nodes: RealNode[] = [];
  let first: Awaited<ReturnType<typeof rke2Server>> | undefined;
  // The service-account signing key every server shares (RSA 2048, never rotated).
  const saKey = (await runCommand('openssl', ['genrsa', '2048'])).stdout;
  for (const [i, h] of hosts.entries()) {
    const server = i < o.servers;
    const dir = join(o.workDir, h.name);
    const root = join(dir, 'host');
    const cas = first ? await clusterCas(first) : undefined;
    const fixture = server
      ? await rke2Server(root, { nodeName: h.name, nodeIP: h.ip, roles: ['etcd', 'controlplane'], ...(cas ? { cas } : {}) })
      : await rke2Agent(root, { nodeName: h.name, nodeIP: h.ip, supervisorRoot: first!.root, ...(cas ? { cas } : {}) });
    first ??= fixture;
    const dataDir = join(root, DATA_DIR);
    const self = { name: h.name, ip: h.ip };
    const sans = { dns: ['localhost', h.name], ips: ['127.0.0.1', '::1', h.ip, '10.43.0.1', network.gatewayIP] };
    if (server) {
      // tls-san: the load balancer's address, as an HA install configures it.
      const serving = await issueWithOpenssl(tls(dataDir, 'server-ca.crt'), tls(dataDir, 'server-ca.key'), {
        cn: 'kube-apiserver',
        dns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', ...sans.dns],
        ips: sans.ips,
        eku: ['serverAuth'],
      });
      await writePair(serving, tls(dataDir, 'serving-kube-apiserver.crt'), tls(dataDir, 'serving-kube-apiserver.key'));
      // kube-controller-manager and kube-scheduler make their own cert-dir pairs at first start.
      await fs.rm(tls(dataDir, 'kube-controller-manager'), { recursive: true, force: true });
      await fs.rm(tls(dataDir, 'kube-scheduler'), { recursive: true, force: true });
      for (const f of ['service.key', 'service.current.key']) await fs.writeFile(tls(dataDir, f), saKey, { mode: 0o600 });
      await fs.writeFile(join(dataDir, 'server', 'db', 'etcd', 'config'), etcdConfig(dataDir, self, serverIds, 'new'), { mode: 0o600 });
      await writeCredKubeconfigs(dataDir);
    }
    await fs.mkdir(join(dir, 'bin'), { recursive: true });
    await fs.mkdir(join(dir, 'run', 'logs'), { recursive: true });
    // What `systemctl` is on this node's PATH.
    await fs.writeFile(
      join(dir, 'bin', 'systemctl'),
      `#!/bin/sh\ncd '${REPO_ROOT}' && exec '${process.execPath}' --import tsx '${join(REPO_ROOT, 'test', 'realnode', 'systemctl.ts')}' '${dir}' "$@"\n`,
      { mode: 0o755 },
    );
    const config: UnitConfig = {
      unit: server ? 'rke2-server' : 'rke2-agent',
      nodeName: h.name,
      nodeIP: h.ip,
      dataDir,
      adminKubeconfig: join(root, 'etc', 'rancher', 'rke2', 'rke2.yaml'),
      binDir: o.binDir,
      runDir: join(dir, 'run'),
      servers: serverIds.map((s) => `https://${s.ip}:9345`),
      staticPods: server ? staticPods(dataDir, self) : [],
      sans,
    };
    await fs.writeFile(unitConfigPath(dir), JSON.stringify(config, null, 2));
    nodes.push({ name: h.name, ip: h.ip, netns: h.netns, server, dir, dataDir, config });
  }
  return nodes;
}

// The tests' own admin: a client certificate from the cluster's client-ca in
// system:masters (not one a rotation renews), through the load balancer.
async function testAdminKubeconfig(workDir: string, first: RealNode, server: string): Promise<string> {
  const pair = await issueWithOpenssl(tls(first.dataDir, 'client-ca.crt'), tls(first.dataDir, 'client-ca.key'), { cn: 'certrotator-e2e', o: ['system:masters'], eku: ['clientAuth'] });
  const file = join(workDir, 'kubeconfig');
  const ca = { pem: await fs.readFile(tls(first.dataDir, 'server-ca.crt')) };
  await fs.writeFile(file, kubeconfigYaml({ server, ca, user: { certPem: pair.certPem, keyPem: pair.keyPem } }), { mode: 0o600 });
  return file;
}
