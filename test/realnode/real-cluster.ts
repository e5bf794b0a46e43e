// What every real-component cluster of the harness shares, whatever the
// distribution: nodes that are network namespaces on one bridge, a load
// balancer in front of the API servers, kwok registering the nodes, one
// certrotator agent per node running inside it with host root `/` on the
// production executor path, and a teardown that ends only the processes it
// recorded. The RKE2 cluster (cluster.ts) and the RKE cluster (rke-cluster.ts)
// lay out their nodes and start their services; the rest is here.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { runCommand } from '../cluster/command.js';
import { writeKwokConfig } from '../cluster/kwok-config.js';
import { freePort, isRunning, readPids, sleep, startProcess, stopProcesses, tail, writePids, type RecordedProcess } from '../cluster/processes.js';
import { createNodes, type SimRole, type SimulatedNode } from '../cluster/nodes.js';
import { readVersions, REPO_ROOT } from '../cluster/paths.js';
import { installCrds } from '../e2e/support/crds.js';
import { readDockerConfig, dockerConfigPath, runningContainer } from './docker-config.js';
import { createHostNetwork, destroyHostNetwork, inNode, type HostNetwork, type NodeHost } from './netns.js';
import { issueWithOpenssl } from './openssl.js';
import { kubeconfigYaml } from './rke2-layout.js';
import { LoadBalancer } from './load-balancer.js';
import { readUnitConfig, runningPod, unitConfigPath, unitLogFile, unitPidFile } from './unit-config.js';
import { cliEntry } from '../../src/simulation/cli-entry.js';
import { listForCleanup } from './cleanup-list.js';

export const API_PORT = 6443;

export interface BaseNode {
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
  // Runs an API server (RKE2 server, RKE controlplane host).
  readonly server: boolean;
  // <workDir>/<name>: bin/ (the node's systemctl or docker), run/ (processes, logs), host/ (the tree).
  readonly dir: string;
}

export interface RealClusterOptions {
  readonly workDir: string;
  readonly binDir: string;
  readonly servers: number;
  readonly workers: number;
  readonly onProgress?: (m: string) => void;
}

export abstract class RealCluster<N extends BaseNode> {
  readonly agents = new Map<string, { child: ChildProcess; log: string }>();
  /**
   * The agents' credentials when not the tests' admin: a kubeconfig with a
   * token of the chart's agent ServiceAccount. The node's IP then comes from
   * NODE_IP, as the DaemonSet gives it (that ServiceAccount cannot read Nodes).
   */
  agentKubeconfig: string | undefined;
  protected constructor(
    readonly o: RealClusterOptions,
    readonly network: HostNetwork,
    readonly nodes: readonly N[],
    readonly lb: LoadBalancer,
    // The tests' own admin identity (system:masters, not one a rotation renews), through the load balancer.
    readonly kubeconfig: string,
    protected readonly procs: RecordedProcess[],
  ) {}

  get servers(): N[] {
    return this.nodes.filter((n) => n.server);
  }

  core(): CoreV1Api {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    return kc.makeApiClient(CoreV1Api);
  }

  protected hostOf(node: N): NodeHost {
    return this.network.hosts.find((h) => h.name === node.name)!;
  }

  /** argv run inside the node: its network namespace (and, where the distribution needs it, its mounts). */
  protected nodeArgv(node: N, argv: readonly string[]): string[] {
    return inNode(this.hostOf(node), argv);
  }

  /** The agent's flags beyond the common ones (where the node's tree is). */
  protected abstract agentArgs(node: N): string[];

  /** Runs a command inside the node. */
  exec(node: N, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const full = this.nodeArgv(node, argv);
    return runCommand(full[0]!, full.slice(1));
  }

  async waitApiServers(timeoutMs: number, logsOf: (n: N) => string[]): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const n of this.servers) {
      for (;;) {
        const r = await runCommand(join(this.o.binDir, 'kubectl'), ['--kubeconfig', this.kubeconfig, '--server', `https://${n.ip}:${API_PORT}`, 'get', '--raw', '/readyz']);
        if (r.code === 0) break;
        if (Date.now() > deadline) throw new Error(`${n.name}: kube-apiserver not ready: ${r.stderr}\n${logsOf(n).map((f) => tail(f)).join('\n')}`);
        await sleep(1000);
      }
    }
  }

  async startKwok(): Promise<void> {
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
  protected record(proc: RecordedProcess): void {
    this.procs.push(proc);
    writePids(this.o.workDir, this.procs);
  }

  /** Starts a long-running process inside the node, recorded by PID (ip netns exec, sh and env exec into it). */
  protected startInNode(node: N, name: string, argv: readonly string[], log: string, env: Record<string, string> = {}): ChildProcess {
    const fd = openSync(log, 'a');
    try {
      const full = this.nodeArgv(node, ['env', `PATH=${join(node.dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...argv]);
      const child = spawn(full[0]!, full.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, ...env, NODE_OPTIONS: '' } });
      if (child.pid) this.record({ name: `${node.name}/${name}`, pid: child.pid, bin: argv[0]!, log });
      return child;
    } finally {
      closeSync(fd);
    }
  }

  /** Starts one certrotator agent per node, inside the node, on the production executor path. */
  async startAgents(env: Record<string, string> = {}): Promise<void> {
    for (const n of this.nodes) {
      const log = join(n.dir, 'run', 'logs', 'certrotator-agent.log');
      const argv = [
        process.execPath, ...cliEntry(), 'agent',
        '--node-name', n.name,
        '--host-root', '/',
        ...this.agentArgs(n),
        '--kubeconfig', this.agentKubeconfig ?? this.kubeconfig,
        '--health-port', '0',
        '--health-host', '127.0.0.1',
      ];
      const identity: Record<string, string> = this.agentKubeconfig ? { NODE_IP: n.ip } : {};
      this.agents.set(n.name, { child: this.startInNode(n, 'certrotator-agent', argv, log, { ...identity, ...env }), log });
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

// Every process a node started (its rke2 unit and static pods, or its RKE
// containers) is recorded by PID in its run dir; only those PIDs are
// signalled, after checking what they run. What restarts others (the rke2
// unit, dockerd) goes first, so nothing comes back while it is stopped.
function nodeProcesses(workDir: string): { supervisors: RecordedProcess[]; workloads: RecordedProcess[] } {
  const supervisors: RecordedProcess[] = [];
  const workloads: RecordedProcess[] = [];
  if (!existsSync(workDir)) return { supervisors, workloads };
  for (const node of readdirSync(workDir)) {
    const dir = join(workDir, node);
    if (existsSync(unitConfigPath(dir))) {
      const config = readUnitConfig(dir);
      const unitPid = existsSync(unitPidFile(config)) ? Number(readFileSync(unitPidFile(config), 'utf8')) : 0;
      if (unitPid) supervisors.push({ name: `${node}/${config.unit}`, pid: unitPid, bin: process.execPath, log: unitLogFile(config) });
      for (const pod of config.staticPods) {
        const proc = runningPod(config, pod.name);
        if (proc) workloads.push(proc);
      }
    }
    if (existsSync(dockerConfigPath(dir))) {
      const config = readDockerConfig(dir);
      for (const c of config.containers) {
        const proc = runningContainer(config, c.name);
        if (proc) workloads.push(proc);
      }
    }
  }
  return { supervisors, workloads };
}

export async function teardown(workDir: string, procs: RecordedProcess[], lb: LoadBalancer | undefined): Promise<void> {
  await lb?.close();
  // Recorded by the harness (kwok, agents, dockerd), then the units, then what they ran.
  await stopProcesses([...procs, ...readPids(workDir)].filter(isRunning));
  // The cluster is thrown away: no grace to wait out (kube-apiserver would hold its open watches for up to 60 s).
  await stopNodeProcesses(workDir, 2_000);
  await destroyHostNetwork(join(workDir, 'network.json'));
}

/** What every node runs (units, then what they started); the harness's own processes stay. graceMs 0: a power cut. */
export async function stopNodeProcesses(workDir: string, graceMs?: number): Promise<void> {
  await stopProcesses(nodeProcesses(workDir).supervisors.filter(isRunning), graceMs);
  await stopProcesses(nodeProcesses(workDir).workloads.filter(isRunning), graceMs);
}

/** Stops whatever a (possibly crashed) run left in `workDir`: its processes by PID, then its network. */
export function stopRealCluster(workDir: string): Promise<void> {
  return teardown(workDir, [], undefined);
}

/** The constructor arguments every real cluster takes. */
export type RealClusterParts<N extends BaseNode> = [RealClusterOptions, HostNetwork, readonly N[], LoadBalancer, string, RecordedProcess[]];

/** What a distribution supplies to the one start sequence (startRealCluster). */
export interface RealClusterRecipe<N extends BaseNode, C extends RealCluster<N>> {
  readonly distribution: 'rke' | 'rke2';
  readonly serverName: (i: number) => string;
  readonly workerName: (i: number) => string;
  /** Writes every node's tree and configuration (certificates made as upstream makes them). */
  layOut(o: RealClusterOptions, network: HostNetwork): Promise<N[]>;
  /** The CA the tests' own admin (system:masters, not an identity a rotation renews) is issued from, and the API servers' CA. */
  testAdmin(first: N): { caCert: string; caKey: string; serverCa: string };
  create(parts: RealClusterParts<N>): C;
  roles(n: N): SimRole[];
  readonly servers: { progress: string; start(c: C, nodes: N[]): Promise<void> };
  readonly workers: { progress: string; start(c: C, nodes: N[]): Promise<void> };
}

/**
 * Network, trees, load balancer, the servers' services until every API server is
 * ready, kwok with the nodes registered and the CRDs installed, then the workers'
 * services. On any failure what was started is stopped before the error is thrown.
 */
export async function startRealCluster<N extends BaseNode, C extends RealCluster<N>>(o: RealClusterOptions, r: RealClusterRecipe<N, C>): Promise<C> {
  const progress = o.onProgress ?? (() => {});
  await mkdir(o.workDir, { recursive: true });
  listForCleanup('cluster', o.workDir);
  const names = [...Array.from({ length: o.servers }, (_, i) => r.serverName(i + 1)), ...Array.from({ length: o.workers }, (_, i) => r.workerName(i + 1))];
  const network = await createHostNetwork({ stateFile: join(o.workDir, 'network.json'), nodes: names });
  const procs: RecordedProcess[] = [];
  const lb = new LoadBalancer(network.hosts.slice(0, o.servers).map((h) => ({ host: h.ip, port: API_PORT })), network.gatewayIP);
  try {
    progress(`network ${network.name}: ${network.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
    const nodes = await r.layOut(o, network);
    await lb.open();
    const kubeconfig = await testAdminKubeconfig(o.workDir, r.testAdmin(nodes[0]!), `https://${network.gatewayIP}:${lb.port}`);
    const cluster = r.create([o, network, nodes, lb, kubeconfig, procs]);
    progress(r.servers.progress);
    await r.servers.start(cluster, cluster.servers);
    await cluster.waitApiServers(180_000, (n) => ['kube-apiserver', 'etcd'].map((c) => join(n.dir, 'run', 'logs', `${c}.log`)));
    progress('starting kwok and registering the nodes');
    await cluster.startKwok();
    await installCrds(kubeconfig);
    const registered: SimulatedNode[] = nodes.map((n) => ({ name: n.name, ip: n.ip, roles: r.roles(n), distribution: r.distribution }));
    await createNodes(cluster.core(), registered, readVersions().k8s, 180_000);
    progress(r.workers.progress);
    await r.workers.start(cluster, nodes.filter((n) => !n.server));
    return cluster;
  } catch (e) {
    await teardown(o.workDir, procs, lb);
    throw e;
  }
}

// The tests' own admin identity, through the load balancer.
async function testAdminKubeconfig(workDir: string, ca: { caCert: string; caKey: string; serverCa: string }, server: string): Promise<string> {
  const pair = await issueWithOpenssl(ca.caCert, ca.caKey, { cn: 'certrotator-e2e', o: ['system:masters'], eku: ['clientAuth'] });
  const file = join(workDir, 'kubeconfig');
  await writeFile(file, kubeconfigYaml({ server, ca: { pem: await readFile(ca.serverCa) }, user: { certPem: pair.certPem, keyPem: pair.keyPem } }), { mode: 0o600 });
  return file;
}
