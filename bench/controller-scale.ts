// Scale benchmark of the controller (npm run bench:scale): a separate control
// plane with 3 RKE2 servers + 500 workers (kwok), one CertificateRotation of
// all services with maxUnavailable 50, and "agents" played by this process:
// it watches every NodeRotation and reports it Rotated (one status write per
// node, like a real agent's final report; a real agent also writes Updating
// first), either
// - at once (closed loop, the default): the run's pace is then set by the CPU
//   the API server, etcd and the controller share, so it is reported as
//   throughput (nodes per second per core), not as a latency target; or
// - after a seeded, realistic host step (`--agent-seconds 2`, uniform within
//   ±`--agent-jitter` 0.5 s; open loop): the machine is not saturated, and the
//   hand-off measures what the controller adds (targets p50 < 50 ms, p99 < 150 ms),
//   reported for the server phase (one at a time: it adds directly to the
//   run's wall time) and for the whole run.
// `--floor` runs bench/floor-reactor.ts in the controller's place: it only
// watches reports and POSTs the next planned NodeRotation, so the same
// measure then says what this machine allows any controller.
//
// Measured:
// - total wall time from `kubectl apply` to Ready=True;
// - hand-off latency: from the API server accepting a node's Rotated report
//   to this process seeing the NodeRotation of the node that report freed a
//   slot for (both on this process's clock); the last server's report frees M
//   slots at once, and the M - 1 starts after the first are the wave start,
//   reported apart (with the old measure, every start, beside it);
// - controller API writes per node, from its own counter
//   (certrotator_controller_api_writes_total, Events included), cross-checked
//   against the API server's apiserver_request_total for mutating verbs;
// - controller peak RSS (VmHWM of the controller process).
//
// The controller runs as production runs it: the compiled build (the
// Dockerfile's `node dist/src/cli/main.js`, built here with the same
// tsconfig.build.json) with the chart's NODE_OPTIONS (controller.nodeOptions
// in charts/certrotator/values.yaml). `--tsx` runs the sources instead.
//
// Usage: npm run bench:scale [-- --workers 500 (or --nodes 500) --max-unavailable 50 --keep --dir DIR --tsx --node-arg=--cpu-prof --samples FILE --warm-up --floor]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { parse, stringify } from 'yaml';
import type { NodeRotation } from '../src/api/noderotation.js';
import { loadKubeConfig, makeClients, type ClusterCustomResource, type CustomObject } from '../src/kube/client.js';
import { customResourceInformer } from '../src/kube/informer.js';
import { startCluster, stopCluster } from '../test/cluster/cluster.js';
import { kubectlOk } from '../test/cluster/kubectl.js';
import { waitFor } from '../test/e2e/support/controller.js';
import { seededRandom } from '../test/cluster/random.js';
import { catalogFor, fillPath } from '../src/distributions/index.js';
import type { FileReport } from '../src/api/noderotation.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '500' },
    /** Issue 14's spelling: `--nodes 5000` is 3 servers + 5,000 workers. */
    nodes: { type: 'string' },
    servers: { type: 'string', default: '3' },
    'max-unavailable': { type: 'string', default: '50' },
    keep: { type: 'boolean', default: false },
    /** Reuse a cluster kept by an earlier `--keep` run. */
    dir: { type: 'string' },
    /**
     * Run the controller from source through tsx (in-process TypeScript
     * compiler) instead of the compiled build. Production runs the build
     * (`npm run build` → `node dist/src/cli/main.js controller`), so that is
     * the default; tsx alone adds ~70 MB of RSS.
     */
    tsx: { type: 'boolean', default: false },
    /** Skip `tsc` (dist/ is already up to date). */
    'no-build': { type: 'boolean', default: false },
    /** Extra node flags for the controller process, e.g. `--node-arg=--cpu-prof`. */
    'node-arg': { type: 'string', multiple: true, default: [] },
    /** Seconds each simulated host step takes (0: report at once, the closed loop). */
    'agent-seconds': { type: 'string', default: '0' },
    /** ± this many seconds around --agent-seconds, uniform, from --seed. */
    'agent-jitter': { type: 'string', default: '0.5' },
    seed: { type: 'string', default: '1' },
    /**
     * Before the measured run, run one rotation of the same nodes through the
     * same controller process, its NodeRotations answered the same way, and
     * measure the second. A controller runs for months: by the time a rotation
     * comes its code is compiled and its connections are open, which the first
     * run after a start pays for. Counters are taken from the measured run only.
     */
    'warm-up': { type: 'boolean', default: false },
    /**
     * Run bench/floor-reactor.ts in place of the controller: the least any
     * controller could do per hand-off (watch a report, POST the next planned
     * NodeRotation; no status, no Events). What it measures is the machine's
     * floor under the same agents; it has no targets of its own.
     */
    floor: { type: 'boolean', default: false },
    /** Write every hand-off to this file, one JSON object a line: when its enabling report landed (ms after the apply, and epoch ms to line up with the controller's log), how long it took, its kind and node. */
    samples: { type: 'string' },
  },
});
const SERVERS = Number(values.servers);
const WORKERS = Number(values.nodes ?? values.workers);
const M = Number(values['max-unavailable']);
const TOTAL = SERVERS + WORKERS;
const AGENT_MS = Number(values['agent-seconds']) * 1000;
const JITTER_MS = AGENT_MS > 0 ? Number(values['agent-jitter']) * 1000 : 0;
const OPEN_LOOP = AGENT_MS > 0;
const FLOOR = values.floor;
if (FLOOR && values['warm-up']) throw new Error('--warm-up warms the controller; --floor runs none');

const random = seededRandom(Number(values.seed));
const warmUpRandom = seededRandom(Number(values.seed) + 1);

/**
 * The files an RKE2 agent reports for a node (what the controller then caches
 * in its NodeRotation informer): every catalog file of the node's services,
 * with old and new serial, new notAfter, backup path and served check, as
 * src/host reports them. Sizes, not values, are what matter here.
 */
function reportedFiles(services: readonly string[], node: string, role: string, rng: () => number): FileReport[] {
  const catalog = catalogFor('rke2');
  const serial = () => Array.from({ length: 16 }, () => Math.floor(rng() * 256).toString(16).padStart(2, '0')).join('').toUpperCase();
  const notAfter = new Date(Date.now() + 365 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return services.flatMap((service) =>
    (catalog.services[service]?.files ?? []).filter((f) => f.cert && f.roles.some((r) => role.split(',').includes(r))).map((f) => {
      const path = `/${fillPath(f.cert!, { dataDir: catalog.defaultDataDir, node })}`;
      return { service, path, oldSerial: serial(), newSerial: serial(), newNotAfter: notAfter, backupPath: path.replace('/tls/', `/tls-${Math.floor(Date.now() / 1000)}/`), servedVerified: true };
    }),
  );
}
/** An agent's final report on `nr` (a merge patch of its status): Rotated, with the files of its services. */
function rotatedReport(nr: NodeRotation, message: string, rng: () => number, startedAt?: string) {
  const { services, nodeName, role, runID } = nr.spec;
  return {
    status: { phase: 'Rotated' as const, step: 'Done', runID, message, ...(startedAt ? { startedAt } : {}), finishedAt: new Date().toISOString(), files: reportedFiles(services, nodeName, role, rng) },
  };
}
/** Issue 14's targets for the controller, at every size up to 3 + 5,000 nodes. */
const TARGETS = { writesPerNode: 1.3, peakRssMB: 200, controllerCpuMsPerNode: 2, statusKiB: 32 };
const NAME = `bench-scale-${Date.now().toString(36)}`;
/** The rotation of --warm-up, run to the end before NAME is applied. */
const WARM_UP = `${NAME}-warm-up`;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** p50, p99 and max of sorted samples, in ms to a tenth. */
function spread(sorted: number[]): { p50: number; p99: number; max: number; samples: number } {
  const ms = (v: number) => Number(v.toFixed(1));
  return { p50: ms(percentile(sorted, 50)), p99: ms(percentile(sorted, 99)), max: ms(sorted.at(-1) ?? NaN), samples: sorted.length };
}

function metricSum(text: string, name: string, filter: (labels: string) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(new RegExp(`^${name}\\{([^}]*)\\} ([0-9.e+]+)$`));
    if (m && filter(m[1]!)) sum += Number(m[2]);
  }
  return sum;
}

/** User + system CPU time of a process so far (Linux /proc; clock ticks of 1/100 s). */
function cpuSecondsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** A process's memory figure from /proc/PID/status in kB (VmHWM: peak RSS so far; VmRSS: now); 0 once it has exited. */
function vmKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The API server's own /metrics (the admin kubeconfig may read it). */
function apiserverMetrics(): Promise<string> {
  return kubectlOk(['get', '--raw', '/metrics']);
}

const BUILT_MAIN = 'dist/src/cli/main.js';

/** The production build, as the Dockerfile makes it (tsc -p tsconfig.build.json → dist/). Type errors do not stop the bench if the controller was emitted. */
function build(log: (m: string) => void): void {
  log('building (tsc -p tsconfig.build.json, as the Dockerfile does)');
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (r.status === 2 && existsSync(BUILT_MAIN)) log(`tsc reported type errors; running the emitted build anyway:\n${r.stdout.split('\n').slice(0, 10).join('\n')}`);
    else throw new Error(`tsc failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
}

/** NODE_OPTIONS the chart gives the controller container (controller.nodeOptions): the bench runs it the same way. */
function productionNodeOptions(): string {
  const values = parse(readFileSync('charts/certrotator/values.yaml', 'utf8')) as { controller?: { nodeOptions?: string } };
  return values.controller?.nodeOptions ?? '';
}

async function main(): Promise<void> {
  const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
  if (!values.tsx && !values['no-build']) build(log);
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'certrotator-bench-'));
  log(`starting a control plane with ${SERVERS} servers + ${WORKERS} workers in ${dir}`);
  const state = await startCluster({ dir, topology: { distribution: 'rke2', servers: SERVERS, workers: WORKERS, ipPrefix: '127.2' }, onProgress: log });
  process.env.KUBECONFIG = state.kubeconfig;
  process.env.CERTROTATOR_BIN_DIR = state.binDir;
  let controller: ReturnType<typeof spawn> | undefined;
  try {
    await kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', 'crds']);
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificaterotations.certrotator.io', 'crd/noderotations.certrotator.io']);

    // The controller, as its own process (its RSS is what we measure), run the way production runs it;
    // or, with --floor, the floor reactor in its place (from source: it is the bench's, not shipped).
    const entry = FLOOR ? ['--import', 'tsx', 'bench/floor-reactor.ts'] : values.tsx ? ['--import', 'tsx', 'src/cli/main.ts', 'controller'] : [BUILT_MAIN, 'controller'];
    const flags = FLOOR ? [`--rotation=${NAME}`] : ['--metrics-addr=127.0.0.1:0', '--leader-elect=false'];
    const nodeOptions = productionNodeOptions();
    log(`${FLOOR ? 'floor reactor' : 'controller'}: node ${[...values['node-arg'], ...entry].join(' ')} (NODE_OPTIONS=${nodeOptions})`);
    controller = spawn(process.execPath, [...values['node-arg'], ...entry, `--kubeconfig=${state.kubeconfig}`, ...flags], {
      env: { ...process.env, NODE_OPTIONS: nodeOptions },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let port: number | undefined;
    let floorReady = false;
    createInterface(controller.stdout!).on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg: string; port?: number };
        if (l.msg.startsWith('serving /metrics')) port = l.port;
        if (l.msg === 'floor ready') floorReady = true;
        if ((l as { level?: string }).level !== 'info') process.stderr.write(`[controller] ${line}\n`);
      } catch {
        // Not a log line: Node's own output (a warning, `--node-arg=--trace-gc`).
        process.stderr.write(`[controller] ${line}\n`);
      }
    });
    const kc = loadKubeConfig({ kubeconfig: state.kubeconfig });
    const clients = makeClients(kc);
    const nrClient = clients.nodeRotations as unknown as ClusterCustomResource<NodeRotation & CustomObject>;

    // The zero-time agents: report Rotated as soon as a NodeRotation appears.
    const seenAt = new Map<string, number>();
    const finishedAt = new Map<string, number>();
    const startOrder: string[] = [];
    const warmedUp = new Set<string>();
    let agentWrites = 0;
    const inFlightReports = new Set<Promise<void>>();
    const sink = {
      add: (name: string) => {
        const nr = informer.get(name);
        if (!nr || seenAt.has(name) || warmedUp.has(name)) return;
        if (nr.spec.rotation === WARM_UP) {
          // At once, and from its own random numbers: the measured run's host steps stay those of its seed.
          warmedUp.add(name);
          nrClient
            .mergePatchStatus(name, rotatedReport(nr, 'bench: warm-up', warmUpRandom))
            .catch((e: unknown) => log(`warm-up report ${name} failed: ${String(e)}`));
          return;
        }
        seenAt.set(name, performance.now());
        startOrder.push(name);
        const p = (async () => {
          // The host step: nothing (closed loop) or a seeded 2 s ± 0.5 s (open loop).
          if (OPEN_LOOP) await new Promise((r) => setTimeout(r, AGENT_MS + (random() * 2 - 1) * JITTER_MS));
          agentWrites++;
          const startedAt = new Date(seenAt.get(name)! - performance.now() + Date.now()).toISOString();
          await nrClient.mergePatchStatus(name, rotatedReport(nr, OPEN_LOOP ? 'bench: simulated host step' : 'bench: zero-time host step', random, startedAt));
          finishedAt.set(name, performance.now());
        })().catch((e: unknown) => log(`report ${name} failed: ${String(e)}`));
        inFlightReports.add(p);
        void p.finally(() => inFlightReports.delete(p));
      },
    };
    // Only this run's objects: a reused cluster (--dir) still holds earlier runs' NodeRotations.
    const informer = customResourceInformer(kc, nrClient, { resyncPeriodMs: 0, labelSelector: `certrotator.io/rotation in (${NAME},${WARM_UP})` });
    informer.enqueueTo(sink);
    informer.start();
    await informer.waitForSync();

    if (values['warm-up']) {
      log(`warm-up: a whole rotation (${WARM_UP}) through the same controller first`);
      await kubectlOk(['apply', '-f', '-'], {
        input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: WARM_UP }, spec: { strategy: { maxUnavailable: M } } }),
      });
      await kubectlOk(['wait', '--for=condition=Ready', `--timeout=${Math.max(900, TOTAL)}s`, `certificaterotation/${WARM_UP}`]);
      // Its Events are gathered for a few seconds (event-window.ts): let them go before counting.
      await new Promise((r) => setTimeout(r, 6000));
      log(`warm-up done: ${warmedUp.size} NodeRotations answered`);
    }
    if (FLOOR) await waitFor('the floor reactor to say it is ready', () => floorReady || controller!.exitCode !== null, 120_000);
    if (FLOOR && !floorReady) throw new Error(`the floor reactor exited (code ${controller.exitCode}) before it was ready`);
    const metricsBefore = port === undefined ? '' : await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

    // The API server's own load with nothing to do (kwok renewing 500 node leases), for comparison.
    const apiserverPid = state.processes.find((p) => p.name === 'kube-apiserver')!.pid;
    const idleFrom = cpuSecondsOf(apiserverPid);
    await new Promise((r) => setTimeout(r, 3000));
    const apiserverIdleCores = (cpuSecondsOf(apiserverPid) - idleFrom) / 3;

    // The controller's peak RSS so far: starting, listing 5,000 Nodes, idling. Peak
    // RSS is the process's lifetime peak (VmHWM), so this says whether it was set before the run.
    const startupPeakRssKb = vmKb(controller.pid!, 'VmHWM');
    const idleRssKb = vmKb(controller.pid!, 'VmRSS');
    const before = await apiserverMetrics();
    const cpuBefore = cpuSecondsOf(controller.pid!);
    const planeCpuBefore = state.processes.map((p) => cpuSecondsOf(p.pid));
    const benchCpuBefore = process.cpuUsage();
    const t0 = performance.now();
    await kubectlOk(['apply', '-f', '-'], {
      input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: NAME }, spec: { strategy: { maxUnavailable: M } } }),
    });
    let peakRssKb = 0;
    const rss = setInterval(() => (peakRssKb = Math.max(peakRssKb, vmKb(controller!.pid!, 'VmHWM'))), 200);
    // Ready=True is the finish line, read the same way kubectl wait reads it (the floor, which writes
    // no status: every node's report accepted, looked at every 10 ms, with the same bound).
    if (FLOOR) await waitFor('every node reported', () => finishedAt.size === TOTAL, Math.max(900, TOTAL) * 1000, () => `${finishedAt.size} of ${TOTAL}`, 10);
    else await kubectlOk(['wait', '--for=condition=Ready', `--timeout=${Math.max(900, TOTAL)}s`, `certificaterotation/${NAME}`]);
    const wall = (performance.now() - t0) / 1000;
    clearInterval(rss);
    // The rotation's status as the API server stores it, at the end of the run: what
    // every hand-off rewrites (issue 14 wants it flat, under 32 KiB, at any size).
    const statusBytes = Buffer.byteLength(JSON.stringify((JSON.parse(await kubectlOk(['get', `certificaterotation/${NAME}`, '-o', 'json'])) as { status?: unknown }).status ?? {}));
    peakRssKb = Math.max(peakRssKb, vmKb(controller.pid!, 'VmHWM'));
    const cpuSeconds = cpuSecondsOf(controller.pid!) - cpuBefore;
    // Everything on this machine competes for the same cores: what each process used during the run.
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const cpuDuringRun: Record<string, number> = Object.fromEntries(
      state.processes.map((p, i) => [p.name, Number((cpuSecondsOf(p.pid) - planeCpuBefore[i]!).toFixed(2))]),
    );
    cpuDuringRun['bench (agents, watchers)'] = Number(((benchCpu.user + benchCpu.system) / 1e6).toFixed(2));
    await Promise.all([...inFlightReports]);
    // Let the last Events flush (they are written in the background), then count.
    await new Promise((r) => setTimeout(r, 2000));

    // Hand-off pairing: server i+1 is freed by server i's report; the first M
    // workers by the last server's; worker j (j ≥ M) by the (j-M)th worker report.
    const starts = startOrder.map((n) => seenAt.get(n)!);
    const finishes = [...finishedAt.values()].sort((a, b) => a - b);
    // (In the open loop the workers finish in any order: the kth report in time frees the kth slot.)
    // The last server's report is the one report that frees M slots at once (the
    // worker phase opens): the first worker is its hand-off; the other M - 1
    // starts it enables are the wave start, reported on their own (they wait
    // for the API server to take M creates at once, not for the controller).
    // `every` keeps the old measure, where they counted as hand-offs too.
    const handoffs: number[] = [];
    const serverHandoffs: number[] = [];
    const waveStart: number[] = [];
    const every: number[] = [];
    const sampleLines: string[] = [];
    for (let j = 1; j < starts.length; j++) {
      const enabling = j < SERVERS ? finishes[j - 1] : j < SERVERS + M ? finishes[SERVERS - 1] : finishes[j - M];
      if (enabling === undefined) continue;
      const ms = starts[j]! - enabling;
      every.push(ms);
      if (j > SERVERS && j < SERVERS + M) waveStart.push(ms);
      else handoffs.push(ms);
      // Server to server, and the last server to the first worker: one at a time, straight onto the wall time.
      if (j <= SERVERS) serverHandoffs.push(ms);
      const kind = j <= SERVERS ? 'server' : j < SERVERS + M ? 'wave' : 'worker';
      sampleLines.push(JSON.stringify({ atMs: Math.round(enabling - t0), epochMs: Math.round(performance.timeOrigin + enabling), ms: Number(ms.toFixed(1)), kind, node: startOrder[j] }));
    }
    if (values.samples) writeFileSync(values.samples, `${sampleLines.join('\n')}\n`);
    for (const samples of [handoffs, serverHandoffs, waveStart, every]) samples.sort((a, b) => a - b);
    // The agents finish at once, so this is a closed loop: a node's cycle is
    // hand-off + report (its agent seeing it, reporting, the API server
    // accepting), and with M in flight the cycle is M / throughput (Little's
    // law). The hand-off cannot drop below M / throughput - report unless the
    // machine gets more nodes through per second.
    const reports = [...finishedAt].map(([n, t]) => t - seenAt.get(n)!).sort((a, b) => a - b);
    const workerStarts = startOrder.slice(SERVERS).map((n) => seenAt.get(n)!);
    const workerSeconds = (Math.max(...finishedAt.values()) - Math.min(...workerStarts)) / 1000;
    const throughput = WORKERS / workerSeconds;

    if (port === undefined && !FLOOR) throw new Error('the controller never said where it serves /metrics');
    const text = port === undefined ? '' : await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const after = await apiserverMetrics();
    const mutating = (t: string, resources = /resource="(certificaterotations|noderotations|events)"/): number =>
      metricSum(t, 'apiserver_request_total', (l) => /verb="(POST|PUT|PATCH|DELETE|CREATE|UPDATE|APPLY)"/i.test(l) && resources.test(l));
    const serverSide = mutating(after) - mutating(before);
    // The controller's counters since it started, less what they were before the measured run (--warm-up).
    // The floor has none: its writes are the API server's count for our two kinds less the agents'
    // and the bench's `kubectl apply` (Events are left out: a new cluster's own components write many).
    const since = (name: string, filter?: (labels: string) => boolean): number => metricSum(text, name, filter) - metricSum(metricsBefore, name, filter);
    const ours = /resource="(certificaterotations|noderotations)"/;
    const writes = FLOOR ? mutating(after, ours) - mutating(before, ours) - agentWrites - 1 : since('certrotator_controller_api_writes_total');
    const eventWrites = FLOOR ? 0 : since('certrotator_controller_api_writes_total', (l) => l.includes('resource="events"'));

    // Where the hand-off time goes: the controller's passes and the API server's
    // own latency per request kind during the run (means, from histogram sums).
    /** How many observations a histogram took between two scrapes of /metrics, and their mean in ms. */
    const meanBetween = (then: string, now: string, name: string, filter: (labels: string) => boolean) => {
      const n = metricSum(now, `${name}_count`, filter) - metricSum(then, `${name}_count`, filter);
      const seconds = metricSum(now, `${name}_sum`, filter) - metricSum(then, `${name}_sum`, filter);
      return { n, ms: n > 0 ? (seconds / n) * 1000 : NaN };
    };
    const request = (verb: string, resource: string, subresource: string) => {
      const f = (l: string) => l.includes(`verb="${verb}"`) && l.includes(`resource="${resource}"`) && l.includes(`subresource="${subresource}"`);
      const { n, ms } = meanBetween(before, after, 'apiserver_request_duration_seconds', f);
      return { n, meanMs: Number(ms.toFixed(1)) };
    };
    const passes = meanBetween(metricsBefore, text, 'certrotator_reconcile_duration_seconds', (l) => l.includes('controller="certificaterotation"'));
    const loop = {
      workersPerSecond: Number(throughput.toFixed(1)),
      workersPerSecondPerCore: Number((throughput / cpus().length).toFixed(1)),
      cycleMs: Number(((M / throughput) * 1000).toFixed(0)),
      reportMs: { p50: Number(percentile(reports, 50).toFixed(1)), p99: Number(percentile(reports, 99).toFixed(1)) },
    };
    const breakdown = {
      cpuSecondsDuringRun: cpuDuringRun,
      apiserverIdleCores: Number(apiserverIdleCores.toFixed(2)),
      apiserverCpuMsPerNodeAboveIdle: Number((((cpuDuringRun['kube-apiserver']! - apiserverIdleCores * wall) / TOTAL) * 1000).toFixed(1)),
      [OPEN_LOOP ? 'openLoop' : 'closedLoop']: loop,
      controllerPasses: { n: passes.n, meanMs: Number(passes.ms.toFixed(1)) },
      putRotationStatus: request('PUT', 'certificaterotations', 'status'),
      createNodeRotation: request('POST', 'noderotations', ''),
      patchNodeRotationStatus: request('PATCH', 'noderotations', 'status'),
      createEvent: request('POST', 'events', ''),
    };

    const result = {
      breakdown,
      nodes: TOTAL,
      maxUnavailable: M,
      nodeRotationsSeen: startOrder.length,
      wallSeconds: Number(wall.toFixed(2)),
      agentStep: OPEN_LOOP ? { ms: AGENT_MS, jitterMs: JITTER_MS, seed: Number(values.seed) } : 'none (closed loop)',
      warmUp: values['warm-up'] ? { nodeRotations: warmedUp.size } : false,
      handoffMs: spread(handoffs),
      serverHandoffMs: spread(serverHandoffs),
      waveStartMs: spread(waveStart),
      everyStartMs: spread(every),
      controllerWritesPerNode: Number((writes / TOTAL).toFixed(2)),
      controllerWritesPerNodeWithoutEvents: Number(((writes - eventWrites) / TOTAL).toFixed(2)),
      agentWritesPerNode: Number((agentWrites / TOTAL).toFixed(2)),
      apiserverMutatingRequestsPerNode: Number((serverSide / TOTAL).toFixed(2)),
      controllerPeakRssMB: Number((peakRssKb / 1024).toFixed(1)),
      controllerRssBeforeRunMB: { peak: Number((startupPeakRssKb / 1024).toFixed(1)), idle: Number((idleRssKb / 1024).toFixed(1)) },
      controllerCpuSeconds: Number(cpuSeconds.toFixed(2)),
      controllerCpuMsPerNode: Number(((cpuSeconds / TOTAL) * 1000).toFixed(2)),
      statusKiB: Number((statusBytes / 1024).toFixed(1)),
      targets: { ...(OPEN_LOOP ? { handoffP50Ms: 50, handoffP99Ms: 150 } : {}), ...TARGETS },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    const rows: [string, string, string, boolean | undefined][] = [
      ['nodes (servers + workers)', `${SERVERS} + ${WORKERS}, maxUnavailable ${M}`, '', undefined],
      ['wall time', `${result.wallSeconds} s`, '', undefined],
      ['controller', FLOOR ? 'none: the floor reactor (bench/floor-reactor.ts) in its place; its figures below' : values['warm-up'] ? `warm: the second run of its process (${warmedUp.size} NodeRotations in the first)` : 'the first run after its start', '', undefined],
      ['host step per node', OPEN_LOOP ? `${AGENT_MS / 1000} s ± ${JITTER_MS / 1000} s (seed ${values.seed}): open loop` : 'none: closed loop', '', undefined],
      ['hand-off p50', `${result.handoffMs.p50} ms`, OPEN_LOOP ? '< 50 ms' : '', OPEN_LOOP ? result.handoffMs.p50 < 50 : undefined],
      ['hand-off p99', `${result.handoffMs.p99} ms`, OPEN_LOOP ? '< 150 ms' : '', OPEN_LOOP ? result.handoffMs.p99 < 150 : undefined],
      ['server-phase hand-off', `p50 ${result.serverHandoffMs.p50} ms, max ${result.serverHandoffMs.max} ms (${result.serverHandoffMs.samples})`, '', undefined],
      ['wave start (M-1 more)', `p50 ${result.waveStartMs.p50} ms, max ${result.waveStartMs.max} ms: the last server's report to each of the other first workers`, '', undefined],
      ['every start counted', `p50 ${result.everyStartMs.p50} ms, p99 ${result.everyStartMs.p99} ms (the wave start as hand-offs)`, '', undefined],
      ['API writes per node', `${result.controllerWritesPerNode} (${result.controllerWritesPerNodeWithoutEvents} without Events)`, `<= ${TARGETS.writesPerNode}`, result.controllerWritesPerNode <= TARGETS.writesPerNode],
      ['controller peak RSS', `${result.controllerPeakRssMB} MB (before the run: peak ${result.controllerRssBeforeRunMB.peak} MB, idle ${result.controllerRssBeforeRunMB.idle} MB)`, `< ${TARGETS.peakRssMB} MB`, result.controllerPeakRssMB < TARGETS.peakRssMB],
      ['controller CPU per node', `${result.controllerCpuMsPerNode} ms (${result.controllerCpuSeconds} s in all)`, `<= ${TARGETS.controllerCpuMsPerNode} ms`, result.controllerCpuMsPerNode <= TARGETS.controllerCpuMsPerNode],
      ['status size at the end', `${result.statusKiB} KiB`, `< ${TARGETS.statusKiB} KiB`, result.statusKiB < TARGETS.statusKiB],
      OPEN_LOOP
        ? ['workers', `${loop.workersPerSecond} nodes/s with ${M} in flight (host step included)`, '', undefined]
        : ['closed loop (workers)', `${loop.workersPerSecond} nodes/s (${loop.workersPerSecondPerCore} per core); ${M} in flight -> cycle ${loop.cycleMs} ms = hand-off + report (p50 ${loop.reportMs.p50} ms)`, '', undefined],
      ['CPU during the run (s)', Object.entries(breakdown.cpuSecondsDuringRun).map(([k, v]) => `${k} ${v}`).join(', '), '', undefined],
      ['API server CPU per node', `${breakdown.apiserverCpuMsPerNodeAboveIdle} ms above its idle ${breakdown.apiserverIdleCores} cores`, '', undefined],
      ['load average', loadavg().map((l) => l.toFixed(2)).join(' '), '', undefined],
    ];
    const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => String(r[i]).length)));
    for (const [what, value, target, met] of rows) {
      process.stdout.write(`${what.padEnd(w[0]!)}  ${value.padEnd(w[1]!)}  ${target.padEnd(w[2]!)}  ${met === undefined ? '' : met ? 'MET' : 'NOT MET'}\n`);
    }
    informer.stop();
    // Latency is a target only in the open loop; the closed loop measures the machine (issue 14).
    const latencyOk = !OPEN_LOOP || (result.handoffMs.p50 < 50 && result.handoffMs.p99 < 150);
    // The floor has no targets: it says what the machine allows. It must only finish.
    const targetsMet =
      latencyOk &&
      result.controllerWritesPerNode <= TARGETS.writesPerNode &&
      result.controllerPeakRssMB < TARGETS.peakRssMB &&
      result.controllerCpuMsPerNode <= TARGETS.controllerCpuMsPerNode &&
      result.statusKiB < TARGETS.statusKiB;
    const ok = startOrder.length === TOTAL && (FLOOR || targetsMet);
    process.exitCode = ok ? 0 : 1;
  } finally {
    if (controller?.pid !== undefined && controller.exitCode === null) process.kill(controller.pid, 'SIGTERM');
    if (!values.keep) {
      await stopCluster(dir);
      rmSync(dir, { recursive: true, force: true });
    } else log(`cluster kept in ${dir}`);
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`[bench] failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
