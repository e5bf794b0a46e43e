// Leader election against the real API server, with each candidate in its
// own process: exactly one leads; when the leader is SIGKILLed (it cannot
// release anything) a standby takes over within 20 s; when the leader stops
// gracefully it releases the Lease and the standby takes over within 5 s.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { ControllerProcess, waitFor as waitForShared } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { kubeConfigVia, TcpProxy } from './support/tcp-proxy.js';

const NS = 'leader-e2e';
const LEASE = 'certrotator-controller';

interface ElectorEvent {
  event: 'running' | 'leader' | 'attempt' | 'started' | 'stopped' | 'exiting';
  identity: string;
  t: number;
  leader?: string;
  reason?: string;
}

class Candidate {
  readonly events: ElectorEvent[] = [];
  readonly child: ChildProcess;
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null | undefined;
  stderr = '';

  constructor(readonly identity: string) {
    // The node binary running jest (the pinned Node 24), not npx: the PID we
    // SIGKILL must be the elector itself, not a wrapper around it.
    this.child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/support/elector.ts', NS, LEASE, identity], {
      cwd: process.cwd(),
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface(this.child.stdout!).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as ElectorEvent);
      } catch {
        /* not ours */
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('exit', (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
    });
  }

  first(event: ElectorEvent['event']): ElectorEvent | undefined {
    return this.events.find((e) => e.event === event);
  }

  leading(): boolean {
    return this.first('started') !== undefined && this.first('stopped') === undefined;
  }

  exited(): boolean {
    return this.exitCode !== undefined;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.pid !== undefined && !this.exited()) process.kill(this.child.pid, signal);
  }
}

// The takeover times are measured: poll the processes' own output every 25 ms.
const waitFor = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, debug: () => string = () => ''): Promise<void> =>
  waitForShared(what, cond, timeoutMs, debug, 25);

interface LeaseJson {
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; leaseTransitions?: number; renewTime?: string };
}
async function readLease(): Promise<LeaseJson> {
  return JSON.parse(await kubectlOk(['-n', NS, 'get', 'lease', LEASE, '-o', 'json'])) as LeaseJson;
}

const candidates: Candidate[] = [];
function candidate(id: string): Candidate {
  const c = new Candidate(id);
  candidates.push(c);
  return c;
}
const describeAll = (): string => candidates.map((c) => `\n${c.identity}: ${JSON.stringify(c.events)} ${c.stderr.slice(-2000)}`).join('');

describe('leader election on a Lease (two processes)', () => {
  beforeAll(async () => {
    await kubectlOk(['create', 'namespace', NS]);
  });
  afterAll(async () => {
    for (const c of candidates) c.kill('SIGKILL');
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
  });

  it('one leads; SIGKILL of the leader → the standby takes over within 20 s; graceful stop → within 5 s', async () => {
    const a = candidate('replica-a');
    const b = candidate('replica-b');
    await waitFor('a leader', () => a.leading() || b.leading(), 30_000, describeAll);
    await waitFor('both to see the leader', () => [a, b].every((c) => c.first('leader')), 30_000, describeAll);
    // Stay with two live candidates for a few renewals (seen on the Lease) and
    // failed attempts of the standby: still exactly one leader.
    const renewals = new Set<string>();
    await waitFor('three renewals of the Lease', async () => (renewals.add((await readLease()).spec.renewTime ?? ''), renewals.size > 3), 30_000, describeAll);
    const [leader, standby] = a.leading() ? [a, b] : [b, a];
    await waitFor('two failed attempts of the standby', () => standby.events.filter((e) => e.event === 'attempt').length >= 2, 30_000, describeAll);
    expect(standby.leading()).toBe(false);
    expect(standby.first('started')).toBeUndefined();
    expect((await readLease()).spec.holderIdentity).toBe(leader.identity);
    expect((await readLease()).spec.leaseDurationSeconds).toBe(15);
    const transitionsBefore = (await readLease()).spec.leaseTransitions ?? 0;

    // SIGKILL: no release, no goodbye. The standby must wait out the lease.
    const killedAt = Date.now();
    leader.kill('SIGKILL');
    await waitFor('the leader process to die', () => leader.exited(), 5000);
    expect(leader.signal).toBe('SIGKILL');
    await waitFor('the standby to take over', () => standby.leading(), 25_000, describeAll);
    const takeoverMs = standby.first('started')!.t - killedAt;
    process.stderr.write(`[leader-election e2e] takeover after SIGKILL: ${takeoverMs} ms\n`);
    expect(takeoverMs).toBeLessThan(20_000);
    // It did wait for the lease to expire (15 s since its last observed renewal, renewals every 2 s).
    expect(takeoverMs).toBeGreaterThan(15_000 - 2_000 - 1_000);
    const afterKill = await readLease();
    expect(afterKill.spec.holderIdentity).toBe(standby.identity);
    expect(afterKill.spec.leaseTransitions).toBe(transitionsBefore + 1);

    // A new standby joins; the leader is stopped gracefully and releases the Lease.
    const c = candidate('replica-c');
    await waitFor('the new standby to see the leader', () => c.first('leader')?.leader === standby.identity, 30_000, describeAll);
    // Two failed attempts: c is in its steady 2 s retry rhythm, not in its first jittered wait.
    await waitFor('two failed attempts of the new standby', () => c.events.filter((e) => e.event === 'attempt').length >= 2, 30_000, describeAll);
    const termAt = Date.now();
    standby.kill('SIGTERM');
    await waitFor('the new standby to take over', () => c.leading(), 10_000, describeAll);
    const gracefulMs = c.first('started')!.t - termAt;
    process.stderr.write(`[leader-election e2e] takeover after graceful stop: ${gracefulMs} ms\n`);
    expect(gracefulMs).toBeLessThan(5_000);
    await waitFor('the stopped leader to exit', () => standby.exited(), 10_000);
    expect(standby.exitCode).toBe(0);
    expect(standby.first('stopped')?.reason).toBe('stopped');
    expect(standby.events.map((e) => e.event)).toContain('exiting');
    const final = await readLease();
    expect(final.spec.holderIdentity).toBe(c.identity);
    expect(final.spec.leaseTransitions).toBe(transitionsBefore + 2);

    c.kill('SIGTERM');
    await waitFor('the last candidate to exit', () => c.exited(), 10_000);
    expect(c.exitCode).toBe(0);
    // Released: no holder left behind.
    expect((await readLease()).spec.holderIdentity).toBeUndefined();
  });
});

describe('a controller leader cut off from the API server (not killed)', () => {
  beforeAll(() => installCrds(), 60_000);

  it('stops acting by its renew deadline, exits 1, and is gone before the standby takes over; back on the network it writes nothing', async () => {
    const base = loadKubeConfig();
    const proxy = new TcpProxy(Number(new URL(base.getCurrentCluster()!.server).port));
    const port = await proxy.open();
    const viaProxy = join(mkdtempSync(join(tmpdir(), 'le-cut-')), 'kubeconfig');
    const kc = kubeConfigVia(base, port);
    writeFileSync(viaProxy, (await kc.clientNode()).exportConfig(), { mode: 0o600 });
    // Lease 6 s, renew deadline 3 s, retry 1 s: the leader must be gone 3 s before the standby may take over.
    const timing = ['--leader-elect-lease-duration=6', '--leader-elect-renew-deadline=3', '--leader-elect-retry-period=1'];
    const a = new ControllerProcess('le-cut-a', { leaseName: 'le-cut', extraArgs: [`--kubeconfig=${viaProxy}`, ...timing] });
    const debug = (): string => `${a.debug()}\n${b?.debug() ?? ''}`;
    let b: ControllerProcess | undefined;
    try {
      await waitFor('a leads', () => a.leading(), 30_000, debug);
      b = new ControllerProcess('le-cut-b', { leaseName: 'le-cut', extraArgs: timing });
      await waitFor('b synced and standing by', () => b!.lines.some((l) => l.msg === 'informer synced'), 30_000, debug);
      const transitionsBefore = Number((await kubectlOk(['get', 'lease', 'le-cut', '-n', 'default', '-o', 'jsonpath={.spec.leaseTransitions}'])) || 0);

      const cutAt = Date.now();
      await proxy.cut();
      await waitFor('a to give up', () => a.exit !== undefined, 10_000, debug);
      const exitedAfter = Date.now() - cutAt;
      await waitFor('b leads', () => b!.leading(), 15_000, debug);
      const takeoverAfter = Date.now() - cutAt;
      process.stderr.write(`[leader-election e2e] cut off: leader exited after ${exitedAfter} ms, standby led after ${takeoverAfter} ms\n`);
      // Gave up within its renew deadline (3 s) plus a retry, with code 1, saying so — and stopped reconciling
      // (its log says when) before the lease (6 s) let b in; the process was gone by then too.
      expect(a.exit).toEqual({ code: 1, signal: null });
      const gaveUp = a.lines.find((l) => l.msg === 'leadership lost; exiting');
      const bLed = b.lines.find((l) => l.msg === 'leading: reconciling');
      expect(Date.parse(String(gaveUp?.time)) - cutAt).toBeLessThan(3_000 + 1_000 + 500);
      expect(Date.parse(String(gaveUp?.time))).toBeLessThan(Date.parse(String(bLed?.time)));
      expect(exitedAfter).toBeLessThan(takeoverAfter);
      // The network comes back: nothing of a's reaches the API server (it is gone); b holds the Lease.
      await proxy.open();
      const lease = JSON.parse(await kubectlOk(['get', 'lease', 'le-cut', '-n', 'default', '-o', 'json']));
      expect(lease.spec.holderIdentity).toBe('le-cut-b');
      expect(lease.spec.leaseTransitions).toBe(transitionsBefore + 1);
    } finally {
      await b?.stop();
      await a.stop();
      await proxy.cut();
      await kubectl(['delete', 'lease', 'le-cut', '-n', 'default', '--ignore-not-found']);
    }
  }, 90_000);
});
