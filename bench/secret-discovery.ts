// Discovery of Secret-backed serving certificates at scale (npm run
// bench:discovery; issue 13: 500 webhook configurations and 2,000 Secrets,
// targets < 2 s and < 30 MB extra in the controller).
//
// On its own control plane: 10 namespaces; 500 ValidatingWebhookConfigurations,
// each calling its own Service; a Pod behind each Service mounting its serving
// Secret; per webhook a serving Secret and a CA Secret (by the "<name>-ca"
// convention), plus 1,000 other Secrets of 4 KiB (what Helm releases and
// tokens add to a namespace): 2,000 Secrets. The certificates are made by
// openssl, one CA and one leaf per namespace (discovery parses and verifies
// each Secret's copy all the same).
//
// Measured in this process, which runs exactly what the controller runs for a
// plan (ApiSecretTargetSource.read, then discoverSecretTargets): wall time,
// and the extra memory: peak RSS during the plan and heap still held after it,
// each above the baseline taken after a GC with the clients built, in a
// process with the chart's heap settings (controller.nodeOptions). One round
// to warm up, then five; the slowest and the largest are reported.
//
// Usage: npm run bench:discovery [-- --webhooks 500 --other-secrets 1000 --keep --dir DIR]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parse } from 'yaml';
import type { AdmissionregistrationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { reuseConnections } from '../src/controller/connection-reuse.js';
import { ApiSecretTargetSource } from '../src/controller/secrets/cluster-read.js';
import { discoverSecretTargets } from '../src/controller/secrets/discovery.js';
import { loadKubeConfig } from '../src/kube/client.js';
import { startCluster, stopCluster } from '../test/cluster/cluster.js';
import { issueServing, makeCa, type Pem } from '../test/secrets/webhook-pki.js';

const { values } = parseArgs({
  options: {
    webhooks: { type: 'string', default: '500' },
    'other-secrets': { type: 'string', default: '1000' },
    namespaces: { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
    dir: { type: 'string' },
  },
});
const WEBHOOKS = Number(values.webhooks);
const OTHER = Number(values['other-secrets']);
const NAMESPACES = Number(values.namespaces);
const TARGETS = { seconds: 2, extraMB: 30 };
const CONCURRENCY = 24;
const ROUNDS = 5;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** NODE_OPTIONS the chart gives the controller container: the plan is measured under the same heap settings. */
function productionNodeOptions(): string {
  const chart = parse(readFileSync('charts/certrotator/values.yaml', 'utf8')) as { controller?: { nodeOptions?: string } };
  return chart.controller?.nodeOptions ?? '';
}
const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const MB = 1024 * 1024;

async function inBatches<T>(items: T[], fn: (t: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += CONCURRENCY) await Promise.all(items.slice(i, i + CONCURRENCY).map(fn));
}

async function populate(core: CoreV1Api, admission: AdmissionregistrationV1Api): Promise<void> {
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `disc-${i}`);
  const pki = new Map<string, { ca: Pem; leaf: Pem }>();
  for (const ns of namespaces) {
    const ca = makeCa({ cn: `${ns}-ca` });
    pki.set(ns, { ca, leaf: issueServing(ca, { cn: `webhook.${ns}.svc`, dns: [`webhook.${ns}.svc`] }) });
    await core.createNamespace({ body: { metadata: { name: ns } } });
  }
  const hooks = Array.from({ length: WEBHOOKS }, (_, i) => ({ i, ns: namespaces[i % NAMESPACES]!, name: `hook-${i}` }));
  const tls = (name: string, ns: string, p: Pem) => ({ metadata: { name, namespace: ns }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(p.certPem), 'tls.key': b64(p.keyPem) } });
  log(`creating ${WEBHOOKS * 2} serving and CA Secrets, ${OTHER} other Secrets`);
  await inBatches(hooks, async (h) => {
    const { ca, leaf } = pki.get(h.ns)!;
    await core.createNamespacedSecret({ namespace: h.ns, body: tls(`${h.name}-tls`, h.ns, leaf) });
    await core.createNamespacedSecret({ namespace: h.ns, body: tls(`${h.name}-ca`, h.ns, ca) });
  });
  const filler = 'x'.repeat(3 * 1024);
  await inBatches(Array.from({ length: OTHER }, (_, i) => i), (i) => {
    const ns = namespaces[i % NAMESPACES]!;
    return core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: `other-${i}`, labels: { owner: 'helm' } }, data: { release: b64(filler) } } });
  });
  log(`creating ${WEBHOOKS} Services, Pods and ValidatingWebhookConfigurations`);
  await inBatches(hooks, async (h) => {
    await core.createNamespacedService({ namespace: h.ns, body: { metadata: { name: h.name }, spec: { selector: { app: h.name }, ports: [{ port: 443 }] } } });
    await core.createNamespacedPod({
      namespace: h.ns,
      body: {
        metadata: { name: `${h.name}-0`, labels: { app: h.name } },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: 'server', image: 'example.invalid/webhook:1', volumeMounts: [{ name: 'tls', mountPath: '/tls' }] }],
          volumes: [{ name: 'tls', secret: { secretName: `${h.name}-tls` } }],
        },
      },
    });
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: `${h.name}.bench.certrotator.io` },
        webhooks: [
          {
            name: `${h.name}.bench.certrotator.io`,
            clientConfig: { service: { namespace: h.ns, name: h.name }, caBundle: b64(pki.get(h.ns)!.ca.certPem) },
            rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
            namespaceSelector: { matchLabels: { 'bench.certrotator.io/never': 'true' } },
            failurePolicy: 'Ignore',
            sideEffects: 'None',
            admissionReviewVersions: ['v1'],
          },
        ],
      },
    });
  });
}

async function main(): Promise<void> {
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'certrotator-bench-discovery-'));
  log(`starting a control plane in ${dir}`);
  const state = await startCluster({ dir, topology: { distribution: 'rke2', servers: 1, workers: 3, ipPrefix: '127.4' }, onProgress: log });
  try {
    const kc = loadKubeConfig({ kubeconfig: state.kubeconfig }).onClientNode(reuseConnections);
    if (!values.dir) await populate(kc.api((m) => m.CoreV1Api), kc.api((m) => m.AdmissionregistrationV1Api));
    const source = new ApiSecretTargetSource(kc);
    const rounds: { seconds: number; targets: number; peakExtraMB: number; heldExtraMB: number; total: number; renewInPlace: number; unresolved: number }[] = [];
    // A first round warms up (code, connections, the young generation a busy
    // controller has anyway); the rounds after it are measured.
    await source.read({});
    for (let round = 0; round < ROUNDS; round++) {
      gc();
      const baseRss = process.memoryUsage.rss();
      const baseHeap = process.memoryUsage().heapUsed;
      let peak = baseRss;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
      const t0 = performance.now();
      const input = await source.read({});
      const result = discoverSecretTargets(input, {});
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage.rss());
      // What the plan keeps (the result, still referenced below), garbage collected away.
      gc();
      const held = process.memoryUsage().heapUsed - baseHeap;
      rounds.push({ seconds, targets: result.targets.length, peakExtraMB: (peak - baseRss) / MB, heldExtraMB: held / MB, total: result.plan.total, renewInPlace: result.plan.renewInPlace, unresolved: result.unresolved.length });
      log(`round ${round + 1}: ${seconds.toFixed(2)} s, peak RSS +${((peak - baseRss) / MB).toFixed(1)} MB, heap held +${(held / MB).toFixed(1)} MB, ${result.plan.total} targets (${input.secrets.length} Secrets read)`);
    }
    const worst = {
      seconds: Math.max(...rounds.map((r) => r.seconds)),
      peakExtraMB: Math.max(...rounds.map((r) => r.peakExtraMB)),
      heldExtraMB: Math.max(...rounds.map((r) => r.heldExtraMB)),
    };
    const found = rounds.every((r) => r.total === WEBHOOKS && r.renewInPlace === WEBHOOKS && r.unresolved === 0);
    const rows: [string, string, string, boolean | undefined][] = [
      ['webhook configurations / Secrets', `${WEBHOOKS} / ${WEBHOOKS * 2 + OTHER}`, '', undefined],
      ['targets found (renew in place)', `${rounds[0]!.total} (${rounds[0]!.renewInPlace})`, `${WEBHOOKS}`, found],
      [`plan wall time (slowest of ${ROUNDS})`, `${worst.seconds.toFixed(2)} s`, `< ${TARGETS.seconds} s`, worst.seconds < TARGETS.seconds],
      ['extra peak RSS during the plan', `${worst.peakExtraMB.toFixed(1)} MB`, `< ${TARGETS.extraMB} MB`, worst.peakExtraMB < TARGETS.extraMB],
      ['heap held after the plan (after GC)', `${worst.heldExtraMB.toFixed(1)} MB`, '', undefined],
    ];
    process.stdout.write('\nsecret discovery\n');
    for (const [what, value, target, met] of rows) process.stdout.write(`${what.padEnd(34)}  ${value.padEnd(16)}  ${target.padEnd(8)}  ${met === undefined ? '' : met ? 'MET' : 'NOT MET'}\n`);
    process.exitCode = found && worst.seconds < TARGETS.seconds && worst.peakExtraMB < TARGETS.extraMB ? 0 : 1;
  } finally {
    if (!values.keep && !values.dir) {
      await stopCluster(dir);
      rmSync(dir, { recursive: true, force: true });
    } else log(`cluster kept in ${dir}`);
  }
}

// The measurement runs in a child process with the chart's heap settings (controller.nodeOptions).
if (process.env.CERTROTATOR_BENCH_CHILD !== '1') {
  const nodeOptions = productionNodeOptions();
  log(`measuring under NODE_OPTIONS=${nodeOptions} (the chart's controller.nodeOptions)`);
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: nodeOptions, CERTROTATOR_BENCH_CHILD: '1' } });
  process.exit(r.status ?? 1);
}

void main().catch((e: unknown) => {
  process.stderr.write(`[bench] failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
