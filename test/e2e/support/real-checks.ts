// The oracles of the real-component suites (RKE2 and RKE): what the real
// etcd and kube-apiserver answer to a client pair, the leases the real
// kube-controller-manager and kube-scheduler hold, and a writer that creates a
// ConfigMap every 200 ms through the load balancer while etcd's quorum is
// sampled. None of it reads certrotator's catalog.
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { WriteLog } from './write-log.js';

export interface ClientPair {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

const bytes = (x: string | Buffer): Buffer => (Buffer.isBuffer(x) ? x : readFileSync(x));

/** GET with a client pair (files or PEM bytes) and a CA; the server's name is checked as any client would. */
export function getTls(url: string, pair: ClientPair | undefined, ca: string | Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'GET',
      timeout: 5000,
      ca: bytes(ca),
      ...(pair ? { cert: bytes(pair.cert), key: bytes(pair.key) } : {}),
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export const etcdIsHealthy = (r: { status: number; body: string }): boolean => r.status === 200 && r.body.includes('"health":"true"');

export interface Lease {
  holder: string;
  renew: number;
}

export async function leases(kubeconfig: string): Promise<Record<string, Lease>> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const api = kc.makeApiClient(CoordinationV1Api);
  const out: Record<string, Lease> = {};
  for (const name of ['kube-controller-manager', 'kube-scheduler']) {
    const l = await api.readNamespacedLease({ namespace: 'kube-system', name });
    out[name] = { holder: l.spec?.holderIdentity ?? '', renew: new Date(l.spec?.renewTime ?? 0).getTime() };
  }
  return out;
}

/** Both leases held by processes other than those before, renewed after `after` (ms). */
export function leasesRenewedSince(before: Record<string, Lease>, now: Record<string, Lease>, after: number): boolean {
  return Object.entries(now).every(([k, l]) => l.holder !== before[k]!.holder && l.renew > after - 1000);
}

// A ConfigMap every 200 ms through the load balancer; etcd members' health every 500 ms.
// A refused write as one line: the API server's own message when it sent a
// Status (its 503s say why: starting, or etcd not answering), else the client's.
function describeFailure(e: Error & { cause?: { code?: string } }): string {
  const status = /HTTP-Code: (\d+)/.exec(e.message)?.[1];
  const said = /\\?"message\\?":\s*\\?"(.*?)\\?"/.exec(e.message)?.[1];
  if (status) return `HTTP ${status}${said ? ` ${said.slice(0, 160)}` : ''}`;
  return `${e.message.slice(0, 120)}${e.cause?.code ? ` (${e.cause.code})` : ''}`;
}

export class Traffic extends WriteLog {
  private readonly core: CoreV1Api;
  private stopped = false;
  private loops: Promise<void>[] = [];
  // Samples in a row without a healthy majority. etcd's /health also says false
  // for the moment a leader hands over (a graceful stop: "leader changed"), one
  // sample; a lost quorum or leader lasts at least an election timeout (5 s here,
  // ten samples). So quorum counts as lost from the second such sample in a row.
  quorumLost = 0;
  majorityMissedOnce = 0;
  private missedInARow = 0;
  // What each unhealthy answer was, once per distinct answer (for the summary).
  unhealthy = new Map<string, number>();
  minHealthy = Infinity;
  samples = 0;

  constructor(
    private readonly prefix: string,
    kubeconfig: string,
    // One health check per etcd member: healthy, or why not.
    private readonly members: readonly (() => Promise<{ status: number; body: string }>)[],
  ) {
    super();
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  start(): void {
    this.loops = [this.writeLoop(), this.quorumLoop()];
  }

  private async writeLoop(): Promise<void> {
    const inflight: Promise<void>[] = [];
    for (let i = 0; !this.stopped; i++) {
      const name = `${this.prefix}-${i}`;
      this.attempted++;
      const sentAt = Date.now();
      inflight.push(
        Promise.race([
          this.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name }, data: { i: String(i) } } }),
          new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 10 s')), 10_000)),
        ]).then(
          () => this.recordAck(name, sentAt),
          (e: Error & { cause?: { code?: string } }) => this.recordFailure(`${name}: ${describeFailure(e)}`, sentAt),
        ),
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(inflight);
  }

  private async quorumLoop(): Promise<void> {
    while (!this.stopped) {
      const answers = await Promise.all(this.members.map((m) => m().catch((e: Error) => ({ status: 0, body: e.message }))));
      for (const a of answers.filter((x) => !etcdIsHealthy(x))) {
        const why = `${a.status} ${a.body.trim().slice(0, 100)}`;
        this.unhealthy.set(why, (this.unhealthy.get(why) ?? 0) + 1);
      }
      const healthy = answers.filter(etcdIsHealthy).length;
      this.samples++;
      this.minHealthy = Math.min(this.minHealthy, healthy);
      this.missedInARow = healthy <= this.members.length / 2 ? this.missedInARow + 1 : 0;
      if (this.missedInARow === 1) this.majorityMissedOnce++;
      if (this.missedInARow >= 2) this.quorumLost++;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  async unreadable(): Promise<string[]> {
    const list = await this.core.listNamespacedConfigMap({ namespace: 'default' });
    const present = new Set(list.items.map((c) => c.metadata?.name));
    return this.acked.filter((n) => !present.has(n));
  }

  summary(): string {
    return `writes ${this.acked.length}/${this.attempted} acknowledged (${(this.availability() * 100).toFixed(2)}%), etcd healthy members min ${this.minHealthy}/${this.members.length} over ${this.samples} samples, ${this.quorumLost} without a majority for 2+ samples in a row, ${this.majorityMissedOnce} single-sample blips (unhealthy answers: ${[...this.unhealthy].map(([w, n]) => `${n}x ${w}`).join('; ') || 'none'}); failures: ${this.failures.slice(0, 5).join(' | ')}`;
  }
}

/** sha256 of every file directly in `dir`, to prove a rollback byte for byte. */
export function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { withFileTypes: true })) if (f.isFile()) out[f.name] = createHash('sha256').update(readFileSync(join(dir, f.name))).digest('hex');
  return out;
}
