// `npm run bench:inventory`: what caching every node's CertificateInventory
// costs the controller (issue 12 §2: under 50 MB at 5,000 nodes). Builds the
// objects as the informer holds them (each parsed from its own JSON, as a watch
// event delivers it), through the policy controller's view, and measures the
// heap they keep after a full GC. Run in its own process (--expose-gc).
import { spawnSync } from 'node:child_process';
import { policyView } from '../src/controller/policy/controller.js';

const NODES = Number(process.env.BENCH_NODES ?? 5000);
const TARGET_MB = 50;
// RKE2's services: a server node has all of them, each with a file path.
const SERVICES = ['admin', 'api-server', 'auth-proxy', 'cloud-controller', 'controller-manager', 'etcd', 'kube-proxy', 'kubelet', 'rke2-controller', 'rke2-server', 'scheduler', 'supervisor'];

/** A node's inventory at its largest: every service, and the bounded lists full (16 reasons of up to 1 KiB, 16 stale endpoints). */
function inventory(i: number): unknown {
  const at = new Date().toISOString();
  return {
    apiVersion: 'certrotator.io/v1alpha1',
    kind: 'CertificateInventory',
    metadata: { name: `rke2-worker-${i}`, resourceVersion: String(1000 + i), uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, creationTimestamp: at },
    status: {
      nodeName: `rke2-worker-${i}`, distribution: 'rke2', roles: 'etcd,controlplane,worker', scannedAt: at, writtenAt: at, files: 40, endpoints: 8, expired: 0, errors: 16,
      earliest: { service: 'admin', notAfter: at, daysLeft: 29, path: '/var/lib/rancher/rke2/server/tls/client-admin.crt' },
      services: SERVICES.map((s, k) => ({ name: s, notAfter: new Date(Date.now() + (k + 1) * 86_400_000).toISOString(), path: `/var/lib/rancher/rke2/server/tls/${s}-${i}.crt` })),
      staleEndpoints: Array.from({ length: 16 }, (_, k) => `kubelet 10.${k}.${i % 250}.1:10250`),
      unreadable: Array.from({ length: 16 }, (_, k) => `/var/lib/rancher/rke2/agent/file-${k}.crt: ${'x'.repeat(200)}`),
    },
  };
}

function measure(view: boolean): number {
  const gc = (globalThis as { gc?: () => void }).gc!;
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = Array.from({ length: NODES }, (_, i) => {
    const obj = JSON.parse(JSON.stringify(inventory(i))) as Parameters<typeof policyView>[0];
    return view ? policyView(obj) : obj;
  });
  gc();
  const mb = (process.memoryUsage().heapUsed - before) / 1048576;
  if (kept.length !== NODES) throw new Error('lost objects');
  return mb;
}

if (process.argv[2] === 'child') {
  process.stdout.write(String(measure(process.argv[3] === 'view')));
} else {
  // One process per measure: a heap that held the other set would skew the second.
  const run = (mode: string): number => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/inventory-memory.ts', 'child', mode], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`inventory-memory ${mode}: ${r.stderr}`);
    return Number(r.stdout);
  };
  const whole = run('whole');
  const view = run('view');
  process.stdout.write(`inventory cache at ${NODES} nodes (every service, lists full)\n`);
  process.stdout.write(`  whole objects   ${whole.toFixed(1)} MiB\n`);
  process.stdout.write(`  policy view     ${view.toFixed(1)} MiB  (target < ${TARGET_MB} MB: ${view < TARGET_MB ? 'MET' : 'NOT MET'})\n`);
  process.exitCode = view < TARGET_MB ? 0 : 1;
}
