// A simulated cluster's hosts, for the e2e tests and the demo: one host tree per
// node laid out from the catalogs (one set of CAs for the whole cluster, as a
// real cluster has), each node's components serving over TLS on the node's
// loopback IP, and one real `certrotator agent` process per node watching the
// API server — the same binary and code path as the DaemonSet.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Distribution, NodeRole } from '../distributions/services.js';
import { cliEntry } from './cli-entry.js';
import { clusterCas, rke2Agent, rke2Server, rkeNode, type FixtureNode } from './fixtures.js';
import { SimulatedNode } from './node.js';

export interface FleetNodeSpec {
  name: string;
  ip: string;
  roles: NodeRole[];
}

export interface FleetOptions {
  workDir: string;
  distribution: Distribution;
  nodes: FleetNodeSpec[];
  kubeconfig: string;
  /** Extra environment for every agent (e.g. CERTROTATOR_TEST_PAUSE_AT). */
  agentEnv?: Record<string, string>;
}

interface Member {
  spec: FleetNodeSpec;
  fixture: FixtureNode;
  sim: SimulatedNode;
  agent?: ChildProcess;
  agentLog: string;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO_ROOT = join(dirname(THIS_FILE), '..', '..', ...(extname(THIS_FILE) === '.js' ? ['..'] : []));

const isServer = (roles: readonly NodeRole[]): boolean => roles.includes('etcd') || roles.includes('controlplane');

const AGENT_START_MS = 150_000;

export class SimulatedFleet {
  private constructor(
    private readonly o: FleetOptions,
    private readonly members: Map<string, Member>,
  ) {}

  /** Lays out every node's host tree; servers first, so agents can be signed by the first server's CAs. */
  static async create(o: FleetOptions): Promise<SimulatedFleet> {
    await mkdir(o.workDir, { recursive: true });
    const members = new Map<string, Member>();
    const ordered = [...o.nodes].sort((a, b) => Number(isServer(b.roles)) - Number(isServer(a.roles)));
    let first: FixtureNode | undefined;
    let cas: Map<string, import('./issue.js').CaMaterial> | undefined;
    const etcdIPs = o.nodes.filter((n) => n.roles.includes('etcd')).map((n) => n.ip);
    for (const spec of ordered) {
      const root = join(o.workDir, spec.name, 'host');
      const common = { nodeName: spec.name, nodeIP: spec.ip, ...(cas ? { cas } : {}) };
      let fixture: FixtureNode;
      if (o.distribution === 'rke') {
        fixture = await rkeNode(root, { ...common, roles: spec.roles, etcdIPs, withOptional: false });
      } else if (isServer(spec.roles)) {
        fixture = await rke2Server(root, { ...common, roles: spec.roles });
      } else {
        if (!first) throw new Error('an RKE2 agent node needs a server in the same fleet to sign its certificates');
        fixture = await rke2Agent(root, { ...common, supervisorRoot: first.root });
      }
      if (!first) {
        first = fixture;
        cas = await clusterCas(fixture);
      }
      members.set(spec.name, { spec, fixture, sim: new SimulatedNode(fixture), agentLog: join(o.workDir, spec.name, 'agent.log') });
    }
    return new SimulatedFleet(o, members);
  }

  nodeNames(): string[] {
    return [...this.members.keys()];
  }

  /** The host tree of a node (what the agent sees as --host-root). */
  hostRoot(name: string): string {
    return this.member(name).fixture.root;
  }

  /** The simulated components of a node, for fault injection in tests. */
  sim(name: string): SimulatedNode {
    return this.member(name).sim;
  }

  agentLog(name: string): string {
    try {
      return readFileSync(this.member(name).agentLog, 'utf8');
    } catch {
      return '';
    }
  }

  agentPid(name: string): number | undefined {
    return this.member(name).agent?.pid;
  }

  /** Starts every node's components, then every agent; returns when all agents watch. */
  async start(): Promise<void> {
    for (const m of this.members.values()) await m.sim.start();
    await Promise.all([...this.members.keys()].map((name) => this.startAgent(name)));
  }

  async startAgent(name: string, env: Record<string, string> = {}): Promise<void> {
    const m = this.member(name);
    const fd = openSync(m.agentLog, 'a');
    const child = spawn(
      process.execPath,
      [
        ...cliEntry(), 'agent',
        '--node-name', name,
        '--host-root', m.fixture.root,
        '--node-ip', m.spec.ip,
        // Every simulated node listens on its own loopback-range IP in this one namespace.
        '--loopback-address', m.spec.ip,
        '--restarter', 'simulation',
        '--distribution', this.o.distribution,
        '--simulation-url', m.sim.controlUrl,
        '--kubeconfig', this.o.kubeconfig,
        '--health-port', '0',
        '--health-host', '127.0.0.1',
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, LOG_LEVEL: 'debug', ...this.o.agentEnv, ...env } },
    );
    closeSync(fd);
    m.agent = child;
    // Generous: a fleet starts all its agents at once, each compiling src/ through tsx
    // and listing NodeRotations, on the cores the other test lane uses too; in a
    // clean-clone run one of the chaos suite's 23 agents had not finished its first
    // list after 60 s. An agent that cannot start still fails, later.
    const deadline = Date.now() + AGENT_START_MS;
    while (!this.agentLog(name).includes('watching NodeRotations of node')) {
      if (child.exitCode !== null) throw new Error(`agent of ${name} exited with ${child.exitCode}:\n${this.agentLog(name).slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`agent of ${name} did not start watching within ${AGENT_START_MS / 1000} s:\n${this.agentLog(name).slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Signals the agent process we started (SIGKILL to simulate a crash); waits until it is gone. */
  async stopAgent(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.member(name).agent;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.members.keys()].map((name) => this.stopAgent(name)));
    for (const m of this.members.values()) await m.sim.stop();
  }

  private member(name: string): Member {
    const m = this.members.get(name);
    if (!m) throw new Error(`no simulated node ${name} in this fleet`);
    return m;
  }
}
