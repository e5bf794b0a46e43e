// Runs `certrotator controller` as a child process (the same CLI a pod runs),
// and a stand-in agent that plays the NodeRotation contract through kubectl.
// The stand-in exists so the controller's side of the contract is tested on
// its own (what it does with whatever an agent reports); the real agents are
// in controller-agents.e2e.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { kubectl, kubectlOk } from '../../cluster/kubectl.js';
import { cliEntry } from '../../../src/simulation/cli-entry.js';

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

// How long a controller may take from spawn to leading. It starts through tsx,
// which compiles src/ on a cold cache, while the other lane starts a fleet of
// agents the same way on the same two cores: one start in a clean-clone run
// printed nothing for 40 s (the rotation suite beside the chaos suite's fleet).
// A controller that cannot lead still fails the suite, later.
export const CONTROLLER_START_MS = 90_000;

export class ControllerProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly identity: string,
    opts: { leaseName: string; extraArgs?: string[] },
  ) {
    // The node binary itself (not npx): the PID we signal must be the controller.
    this.child = spawn(
      process.execPath,
      [
        ...cliEntry(), 'controller',
        ...(process.env.KUBECONFIG ? [`--kubeconfig=${process.env.KUBECONFIG}`] : []),
        '--metrics-addr=127.0.0.1:0',
        '--lease-namespace=default',
        `--lease-name=${opts.leaseName}`,
        `--identity=${identity}`,
        ...(opts.extraArgs ?? []),
      ],
      // debug: the 'reconciled' lines reconciledAfterTouch waits on.
      { cwd: process.cwd(), env: { ...process.env, NODE_OPTIONS: '', LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    createInterface(this.child.stdout!).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        /* not a log line */
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      // Said at once: a suite waiting on a condition would otherwise only time out.
      if (!this.stopping) process.stderr.write(`controller ${identity} exited (code ${code}, signal ${signal}):\n${this.debug()}\n`);
    });
  }

  private stopping = false;

  get port(): number | undefined {
    return this.lines.find((l) => l.msg.startsWith('serving /metrics'))?.port as number | undefined;
  }

  leading(): boolean {
    return this.lines.some((l) => l.msg === 'leading: reconciling');
  }

  kill(signal: NodeJS.Signals): void {
    // Ended on purpose: not worth a message.
    this.stopping = true;
    if (this.child.pid !== undefined && this.exit === undefined) process.kill(this.child.pid, signal);
  }

  async stop(): Promise<void> {
    if (this.exit) return;
    this.stopping = true;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Touches the rotation, or with `kind` a policy (an annotation; no spec change) and waits until a
   * reconcile pass has decided from that version or a later one. After it, a
   * check that nothing happened is a fact (the controller had its chance at
   * this very state), not a hope that a fixed sleep was long enough.
   * (Comparing resourceVersions as numbers holds for etcd3, which the tests run.)
   */
  async reconciledAfterTouch(rotation: string, opts: { kubeconfig?: string; kind?: string } = {}): Promise<void> {
    const kind = opts.kind ?? 'certificaterotation';
    const rv = Number(
      await kubectlOk(
        ['annotate', '--overwrite', kind, rotation, `test.certrotator.io/touched=${Date.now()}`, '-o', 'jsonpath={.metadata.resourceVersion}'],
        opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {},
      ),
    );
    const controller = kind === 'certificaterotation' ? 'certificaterotation' : 'certificaterotationpolicy';
    await waitFor(
      `a reconcile of ${kind} ${rotation} at resourceVersion ${rv} or later`,
      () => this.lines.some((l) => l.msg === 'reconciled' && l.controller === controller && l.object === rotation && Number(l.resourceVersion) >= rv),
      30_000,
      () => this.debug(),
    );
  }

  debug(): string {
    return `${this.identity}: ${this.lines.slice(-15).map((l) => `${l.level} ${l.msg} ${l.err ?? ''}`).join('\n')}\n${this.stderr.slice(-2000)}`;
  }
}

/**
 * Polls `cond` until it holds. Every 100 ms for the first 2 s, then every 500 ms:
 * most conditions start a kubectl, and back-to-back kubectl processes through a
 * long wait took CPU that both lanes of `npm test` share. `pollMs` sets one
 * interval instead, for a cheap condition whose time is itself measured.
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, debug: () => string = () => '', pollMs?: number): Promise<void> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${debug()}`);
    await new Promise((r) => setTimeout(r, pollMs ?? (Date.now() - start < 2_000 ? 100 : 500)));
  }
}

export interface NodeRotationJson {
  metadata: { name: string; uid: string; creationTimestamp: string; labels: Record<string, string> };
  spec: { nodeName: string; role: string; runID: string; services: string[]; generation: number; scope: string; action?: string };
  status?: { phase?: string; step?: string };
}

export async function nodeRotationsOf(rotation: string): Promise<NodeRotationJson[]> {
  const out = await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${rotation}`, '-o', 'json']);
  return (JSON.parse(out) as { items: NodeRotationJson[] }).items;
}

export async function getRotation(name: string): Promise<any> {
  const r = await kubectl(['get', 'certificaterotation', name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

export type Verdict = 'rotate' | 'hold' | { phase: 'Failed' | 'RolledBack'; step: string; message: string };

const FINISHED = ['Rotated', 'Failed', 'RolledBack'];
const isServer = (role: string): boolean => role.includes('etcd') || role.includes('controlplane');

/**
 * Plays the agent's side of the NodeRotation contract with kubectl: a new
 * NodeRotation goes Updating, and after `holdMs` (or when released) Rotated,
 * or whatever `decide` says. It watches the controller while doing so: a
 * server NodeRotation that appears while another one is open, or a second
 * object for the same node, is recorded as a violation.
 */
export class ContractAgent {
  readonly firstSeen = new Map<string, number>();
  readonly finished = new Map<string, string>();
  /**
   * When this agent sent each node's final report (ms since the epoch, before the
   * write, not after it returns: a kubectl call under load takes hundreds of ms, in
   * which the controller can already act on the report).
   */
  readonly reportSentAt = new Map<string, number>();
  readonly uidsByNode = new Map<string, Set<string>>();
  readonly violations: string[] = [];
  readonly order: string[] = [];
  private readonly released = new Set<string>();
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly rotation: string,
    private readonly decide: (nr: NodeRotationJson) => Verdict = () => 'rotate',
    private readonly holdMs = 0,
  ) {}

  release(node: string): void {
    this.released.add(node);
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.tick().catch((e: unknown) => this.violations.push(`agent tick failed: ${String(e)}`));
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  async tick(): Promise<void> {
    const items = await nodeRotationsOf(this.rotation);
    const open = (): string[] => [...this.firstSeen.keys()].filter((n) => !this.finished.has(n));
    for (const nr of items) {
      // A Check (mode: Plan) is answered at once with one certificate per service, expiring a day apart per node.
      if (nr.spec.action !== 'Check' || this.finished.has(nr.metadata.name)) continue;
      const day = Number(nr.spec.nodeName.match(/(\d+)$/)?.[1] ?? 0) + (nr.spec.role.includes('etcd') ? 0 : 10);
      const notAfter = new Date(Date.UTC(2027, 0, 1 + day)).toISOString().replace(/\.\d+Z$/, 'Z');
      const files = nr.spec.services.map((service) => ({ service, path: `/contract/${nr.spec.nodeName}/${service}.crt`, oldSerial: '0A', notAfter }));
      await this.patch(nr, { phase: 'Checked', runID: nr.spec.runID, files, message: 'checked by the contract agent' });
      this.finished.set(nr.metadata.name, 'Checked');
    }
    for (const nr of items) {
      if (nr.spec.action === 'Check') continue;
      const node = nr.spec.nodeName;
      const uids = this.uidsByNode.get(node) ?? new Set();
      uids.add(nr.metadata.uid);
      this.uidsByNode.set(node, uids);
      if (this.firstSeen.has(node)) continue;
      const openServers = open().filter((n) => isServer(items.find((i) => i.spec.nodeName === n)?.spec.role ?? 'worker'));
      if (isServer(nr.spec.role) && openServers.length > 0) this.violations.push(`${node} started while server(s) ${openServers.join(',')} in flight`);
      this.firstSeen.set(node, Date.now());
      this.order.push(node);
      await this.patch(nr, { phase: 'Updating', step: 'BackingUp', runID: nr.spec.runID, startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
    }
    for (const nr of items) {
      const node = nr.spec.nodeName;
      if (nr.spec.action === 'Check' || this.finished.has(node)) continue;
      const verdict = this.decide(nr);
      if (verdict === 'hold' && !this.released.has(node)) continue;
      if (verdict === 'rotate' || verdict === 'hold') {
        if (Date.now() - this.firstSeen.get(node)! < this.holdMs && !this.released.has(node)) continue;
        this.reportSentAt.set(node, Date.now());
        await this.patch(nr, { phase: 'Rotated', step: 'Done', runID: nr.spec.runID, message: 'rotated by the contract agent' });
        this.finished.set(node, 'Rotated');
      } else {
        this.reportSentAt.set(node, Date.now());
        await this.patch(nr, { ...verdict, runID: nr.spec.runID });
        this.finished.set(node, verdict.phase);
      }
    }
  }

  private async patch(nr: NodeRotationJson, status: Record<string, unknown>): Promise<void> {
    await kubectlOk(['patch', 'noderotation', nr.metadata.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  }

  duplicates(): string[] {
    return [...this.uidsByNode].filter(([, uids]) => uids.size > 1).map(([n]) => n);
  }
}

export { FINISHED };
