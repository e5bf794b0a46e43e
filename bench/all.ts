// `npm run bench`: every benchmark, one after the other, each in its own
// process (run side by side they would skew each other's numbers):
//   1. bench/run.ts — the certificate engine (renewals/s, event-loop blocking);
//   2. bench/controller-scale.ts — the controller at 3 + 500 nodes, closed loop
//      (agents report at once: throughput per core, API writes per node, peak
//      RSS), on its own control plane;
//   3. the same, open loop (each host step 2 s ± 0.5 s, seeded): the hand-off
//      latency the controller adds (p50 < 50 ms, p99 < 150 ms);
//   4. bench/inventory-memory.ts — the controller's cache of 5,000 nodes'
//      CertificateInventories (< 50 MB);
//   5. bench/secret-discovery.ts — a scope: Secrets plan over 500 webhook
//      configurations and 2,000 Secrets (< 2 s, < 30 MB extra), on its own
//      control plane.
// Each prints its own table; the exit code is non-zero when either failed or
// missed a target. About 4 minutes on 2 cores (BENCH_SECONDS per engine case,
// default 8; the scale run brings up and tears down its cluster).
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';

const BENCHES = [
  { name: 'certificate engine', file: 'bench/run.ts', args: [] },
  { name: 'controller scale', file: 'bench/controller-scale.ts', args: [] },
  { name: 'controller open loop', file: 'bench/controller-scale.ts', args: ['--agent-seconds', '2', '--no-build'] },
  { name: 'inventory cache', file: 'bench/inventory-memory.ts', args: [] },
  { name: 'secret discovery', file: 'bench/secret-discovery.ts', args: [] },
];

function run(file: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(1));
  });
}

async function main(): Promise<void> {
  const results: { name: string; code: number; seconds: number }[] = [];
  for (const b of BENCHES) {
    process.stdout.write(`\n=== ${b.name} (${b.file}) — load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} ===\n`);
    const t0 = performance.now();
    const code = await run(b.file, b.args);
    results.push({ name: b.name, code, seconds: (performance.now() - t0) / 1000 });
  }
  process.stdout.write('\n=== summary ===\n');
  for (const r of results) process.stdout.write(`${r.name.padEnd(20)} ${r.code === 0 ? 'ok          ' : `exit code ${r.code}`}  ${r.seconds.toFixed(0)} s\n`);
  process.exitCode = results.some((r) => r.code !== 0) ? 1 : 0;
}

void main();
