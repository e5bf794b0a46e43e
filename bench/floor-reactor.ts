// The floor of the hand-off (bench:scale --floor): the least any controller
// could do between an agent's Rotated report and the next node's NodeRotation,
// run in place of the controller so that the same cluster, agents and measure
// say what the machine itself allows.
//
// It plans once, before the run, with the controller's own planner, and builds
// every NodeRotation up front (the same objects, names and sizes the
// controller creates). Then it only watches: a Rotated report frees a slot,
// and the next planned node's NodeRotation is POSTed at once: servers one at a
// time, then maxUnavailable workers. No status write, no Events, no cache
// view, no fence, no crash safety: a real controller cannot be this cheap, so
// a hand-off the floor cannot reach is one the controller cannot either.
//
// It uses the controller's informer and client (src/kube), so the floor is
// that of the API server, etcd, our watch and our POST on this machine.
//
// Usage (controller-scale.ts spawns it): node --import tsx bench/floor-reactor.ts --kubeconfig K --rotation NAME
import { parseArgs } from 'node:util';
import { nodeScope, type CertificateRotation } from '../src/api/certificaterotation.js';
import type { NodeRotation } from '../src/api/noderotation.js';
import { LABELS } from '../src/api/constants.js';
import { buildNodeRotation } from '../src/controller/node-rotation.js';
import { planRotation } from '../src/controller/plan.js';
import { loadKubeConfig, makeClients, type ClusterCustomResource, type CustomObject } from '../src/kube/client.js';
import { customResourceInformer } from '../src/kube/informer.js';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, rotation: { type: 'string' } } });
const log = (m: string): void => void process.stderr.write(`[floor] ${m}\n`);

async function main(): Promise<void> {
  const name = values.rotation;
  if (!values.kubeconfig || !name) throw new Error('--kubeconfig and --rotation are required');
  const kc = loadKubeConfig({ kubeconfig: values.kubeconfig });
  const clients = makeClients(kc);
  const rotations = clients.certificateRotations as unknown as ClusterCustomResource<CertificateRotation & CustomObject>;
  const nodeRotations = clients.nodeRotations as unknown as ClusterCustomResource<NodeRotation & CustomObject>;
  const nodes = (await clients.core.listNode()).items;

  // The same watch the controller opens, before there is anything to see.
  let onReport = (_name: string): void => undefined;
  const informer = customResourceInformer(kc, nodeRotations, { resyncPeriodMs: 0, labelSelector: `${LABELS.rotation}=${name}` });
  informer.enqueueTo({ add: (key) => onReport(key) });
  informer.start();
  await informer.waitForSync();
  // Said on stdout once it can act: the bench applies the rotation only then.
  process.stdout.write(`${JSON.stringify({ msg: 'floor ready', nodes: nodes.length })}\n`);

  // The rotation's uid goes into every NodeRotation (owner, runID): wait for it.
  let rotation: CertificateRotation | undefined;
  while (!(rotation = await rotations.tryGet(name))) await new Promise((r) => setTimeout(r, 20));
  const planned = planRotation({ nodes, distribution: 'rke2', scope: nodeScope(rotation.spec.scope), maxUnavailable: rotation.spec.strategy.maxUnavailable });
  if (!planned.ok) throw new Error(`${name}: ${planned.message}`);
  const { plan } = planned;
  const objects = plan.nodes.map((n) => buildNodeRotation(rotation!, 1, 'rke2', n));
  const servers = plan.nodes.filter((n) => n.kind === 'server').length;
  log(`${name}: ${servers} servers + ${plan.nodes.length - servers} workers, ${plan.maxUnavailable} at a time`);

  const rotated = new Set<string>();
  let next = 0;
  let inFlight = 0;
  const startMore = (): void => {
    // Servers one at a time; workers only once every server is done, maxUnavailable at once.
    while (next < objects.length && (next < servers ? inFlight === 0 : rotated.size >= servers && inFlight < plan.maxUnavailable)) {
      const nr = objects[next++]!;
      inFlight++;
      nodeRotations.create(nr as NodeRotation & CustomObject).catch((e: unknown) => log(`create ${nr.metadata!.name!} failed: ${String(e)}`));
    }
    if (rotated.size === objects.length) log(`${name}: all ${objects.length} nodes reported Rotated`);
  };
  onReport = (key) => {
    if (rotated.has(key) || informer.get(key)?.status?.phase !== 'Rotated') return;
    rotated.add(key);
    inFlight--;
    startMore();
  };
  startMore();
}

main().catch((e: unknown) => {
  log(`failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
