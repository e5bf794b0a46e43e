// Renewal throughput and event-loop blocking: certrotator's engine (ECDSA P-256 and
// RSA-2048 on WebCrypto), node-forge (RSA-2048; it cannot do ECDSA) and the openssl
// CLI, side by side on this machine. Run: npm run bench  (one core: taskset -c 0 npm run bench)
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { KeyAlgorithm, KeyEncoding, ValidityProfile } from '../src/distributions/types.js';
import { renewCertificate } from '../src/pki/renew.js';
import { caFromMaterial, createCa, issueLeaf } from '../src/simulation/issue.js';

const execFileAsync = promisify(execFile);
const BUDGET_MS = Number(process.env.BENCH_SECONDS ?? 8) * 1000;

interface Row {
  name: string;
  renewals: number;
  seconds: number;
  perSecond: number;
  msEach: number;
  cpuMsEach: number;
  p99BlockMs: number;
  maxBlockMs: number;
}

// CPU time of this process (all threads: the event loop and the libuv threadpool)
// plus its waited-for children (the openssl processes), from /proc/self/stat.
// On a shared machine wall-clock rates fall with the load; CPU time per renewal
// is what one uncontended core would take.
async function cpuMs(): Promise<number> {
  const fields = (await fs.readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return (ticks * 1000) / 100;
}

// Runs `one` repeatedly (with `inFlight` concurrent) for up to `budgetMs` or `max` renewals,
// while a histogram records how late the event loop's timers fired.
async function measure(name: string, one: () => Promise<unknown>, inFlight: number, budgetMs: number, max: number): Promise<Row> {
  await one(); // warm-up (JIT, key import)
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const cpuStart = await cpuMs();
  const start = performance.now();
  let done = 0;
  let started = 0;
  const worker = async () => {
    while (started < max && performance.now() - start < budgetMs) {
      started++;
      await one();
      done++;
      // Let timers run between renewals: the block we measure is one renewal's
      // longest synchronous stretch, not the whole loop's.
      await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - start) / 1000;
  const cpu = (await cpuMs()) - cpuStart;
  h.disable();
  // The histogram's values are delays beyond the 1 ms resolution tick. Time the OS
  // spends running other processes counts as delay too (see the openssl rows, where
  // this process only waits): compare rows, and read p99 next to max.
  const maxBlockMs = Math.max(0, h.max / 1e6 - 1);
  const p99BlockMs = Math.max(0, h.percentile(99) / 1e6 - 1);
  return { name, renewals: done, seconds, perSecond: done / seconds, msEach: (seconds * 1000) / done, cpuMsEach: cpu / done, p99BlockMs, maxBlockMs };
}

async function engineCase(algorithm: KeyAlgorithm, encoding: KeyEncoding, validity: ValidityProfile, chained: boolean) {
  const ca = await caFromMaterial(await createCa('bench-ca', algorithm, encoding));
  const old = await issueLeaf({
    template: { cn: 'kube-apiserver', dns: ['kubernetes', 'kubernetes.default', 'localhost'], ips: ['127.0.0.1', '10.43.0.1'], eku: ['serverAuth'] },
    ca,
    validity,
    algorithm,
    encoding,
    chained,
  });
  return () => renewCertificate({ certText: old.certPem, certFile: 'bench.crt', keyText: old.keyPem, keyFile: 'bench.key', ca, validity, chained });
}

function forgeCase() {
  const pki = forge.pki;
  const caKeys = pki.rsa.generateKeyPair(2048);
  const caCert = pki.createCertificate();
  caCert.publicKey = caKeys.publicKey;
  caCert.serialNumber = '01';
  caCert.validity.notBefore = new Date();
  caCert.validity.notAfter = new Date(Date.now() + 3650 * 86_400_000);
  caCert.setSubject([{ name: 'commonName', value: 'kube-ca' }]);
  caCert.setIssuer([{ name: 'commonName', value: 'kube-ca' }]);
  caCert.setExtensions([{ name: 'basicConstraints', cA: true }]);
  caCert.sign(caKeys.privateKey, forge.md.sha256.create());
  const oldPem = (() => {
    const keys = pki.rsa.generateKeyPair(2048);
    const c = pki.createCertificate();
    c.publicKey = keys.publicKey;
    c.serialNumber = '02';
    c.validity.notBefore = caCert.validity.notBefore;
    c.validity.notAfter = new Date(Date.now() + 3650 * 86_400_000);
    c.setSubject([{ name: 'commonName', value: 'kube-apiserver' }]);
    c.setIssuer(caCert.subject.attributes);
    c.setExtensions([
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'kubernetes' }, { type: 7, ip: '127.0.0.1' }] },
    ]);
    c.sign(caKeys.privateKey, forge.md.sha256.create());
    return pki.certificateToPem(c);
  })();
  // The same job as the engine: parse the old one, new key, copy identity, sign, encode.
  return async () => {
    const old = pki.certificateFromPem(oldPem);
    if (!caCert.verify(old)) throw new Error('not signed by the CA');
    const keys = pki.rsa.generateKeyPair(2048);
    const c = pki.createCertificate();
    c.publicKey = keys.publicKey;
    c.serialNumber = forge.util.bytesToHex(forge.random.getBytesSync(8)).replace(/^[89a-f]/, '1');
    c.validity.notBefore = caCert.validity.notBefore;
    c.validity.notAfter = new Date(Date.now() + 3650 * 86_400_000);
    c.setSubject(old.subject.attributes);
    c.setIssuer(caCert.subject.attributes);
    c.setExtensions(old.extensions);
    c.sign(caKeys.privateKey, forge.md.sha256.create());
    return [pki.certificateToPem(c), pki.privateKeyToPem(keys.privateKey)];
  };
}

async function opensslCase(dir: string, kind: 'ec' | 'rsa') {
  const ca = join(dir, `ca-${kind}`);
  const newkey = kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  await execFileAsync('openssl', ['req', '-x509', ...newkey, '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', '/CN=bench-ca', '-days', '3650']);
  let n = 0;
  // One process per renewal, as a shell script around openssl would do it.
  return async () => {
    const out = join(dir, `leaf-${kind}-${n++ % 8}`);
    await execFileAsync('openssl', [
      'req', '-x509', ...newkey, '-nodes', '-keyout', `${out}.key`, '-out', `${out}.crt`, '-subj', '/CN=kube-apiserver',
      '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-days', '365',
      '-addext', 'subjectAltName=DNS:kubernetes,IP:127.0.0.1', '-addext', 'extendedKeyUsage=serverAuth',
    ]);
  };
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'certrotator-bench-'));
  const RKE2: ValidityProfile = { days: 365, notBefore: 'one-hour-back-clamped-to-ca' };
  const RKE: ValidityProfile = { days: 3650, notBefore: 'ca-not-before' };
  const p256 = await engineCase({ name: 'ECDSA', namedCurve: 'P-256' }, 'sec1', RKE2, true);
  const rsa = await engineCase({ name: 'RSA', modulusLength: 2048 }, 'pkcs1', RKE, false);
  const rows: Row[] = [];
  const run = async (r: Promise<Row>) => {
    const row = await r;
    rows.push(row);
    process.stderr.write(`  ${row.name}: ${row.perSecond.toFixed(1)}/s\n`);
  };
  console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (a busy machine lowers every row alike)`);
  process.stderr.write(`benchmarking (${cpus().length} CPUs visible, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'default 4'}, ${BUDGET_MS / 1000}s per case)\n`);
  await run(measure('certrotator P-256, sequential', p256, 1, BUDGET_MS, 20_000));
  await run(measure('certrotator P-256, 16 in flight', p256, 16, BUDGET_MS, 20_000));
  await run(measure('certrotator RSA-2048, sequential', rsa, 1, BUDGET_MS, 200));
  await run(measure('certrotator RSA-2048, 4 in flight', rsa, 4, BUDGET_MS, 200));
  await run(measure('node-forge RSA-2048, sequential', forgeCase(), 1, BUDGET_MS, 100));
  await run(measure('openssl CLI P-256, sequential', await opensslCase(dir, 'ec'), 1, BUDGET_MS, 2000));
  await run(measure('openssl CLI RSA-2048, sequential', await opensslCase(dir, 'rsa'), 1, BUDGET_MS, 200));
  await fs.rm(dir, { recursive: true, force: true });

  const header = ['case', 'renewals', 'seconds', 'renewals/s', 'ms each', 'CPU ms each', 'per CPU-second', 'loop block p99 ms', 'max ms'];
  const lines = rows.map((r) => [
    r.name,
    String(r.renewals),
    r.seconds.toFixed(2),
    r.perSecond.toFixed(1),
    r.msEach.toFixed(2),
    r.cpuMsEach.toFixed(2),
    (1000 / r.cpuMsEach).toFixed(0),
    r.p99BlockMs.toFixed(1),
    r.maxBlockMs.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
  const best = rows.filter((r) => r.name.startsWith('certrotator P-256'));
  const fastest = Math.max(...best.map((r) => r.perSecond));
  const perCpu = Math.max(...best.map((r) => 1000 / r.cpuMsEach));
  const worstBlock = Math.max(...rows.filter((r) => r.name.startsWith('certrotator')).map((r) => r.maxBlockMs));
  console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`\ntarget: >= 500 P-256 renewals/s -> ${fastest.toFixed(0)}/s wall clock, ${perCpu.toFixed(0)} per CPU-second ${fastest >= 500 ? 'MET' : perCpu >= 500 ? 'MET per CPU-second only' : 'NOT MET'}; ` +
    `no event-loop block over 5 ms -> worst ${worstBlock.toFixed(1)} ms ${worstBlock <= 5 ? 'MET' : 'NOT MET'}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
