// `certrotator agent`: runs on every node (DaemonSet), watches the NodeRotations
// addressed to its node and carries them out with the host steps.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { CatalogHostRunner } from '../agent/host-runner.js';
import { NodeAgent } from '../agent/node-agent.js';
import { loadKubeConfig, makeClients, type ClusterCustomResource, type CustomObject } from '../kube/client.js';
import type { CertificateInventory } from '../api/certificateinventory.js';
import { NodeInventory } from '../agent/inventory.js';
import { InventoryPublisher } from '../agent/inventory-publisher.js';
import { nodeAddresses } from '../host/verify.js';
import { EventRecorder } from '../kube/events.js';
import { DISTRIBUTIONS, type Distribution } from '../distributions/services.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { startObservabilityServer } from '../observability/server.js';
import { inventoryInterval, UsageError, type Command, type Io } from './command.js';
import { executorFor } from './node.js';

const USAGE = `usage: certrotator agent --node-name NAME [options]

Watches the NodeRotations of one node and renews, restarts and verifies that
node's certificates as they instruct, reporting each step in their status.

  --node-name NAME       this node (default: $NODE_NAME)
  --host-root DIR        where the node's filesystem is mounted (default /)
  --data-dir DIR         the distribution's data dir on the host (default: the catalog's)
  --node-ip IP           the node's IP, where components bound to it answer (default: $NODE_IP, which the
                         chart sets from status.hostIP; else the Node's InternalIP, which needs get nodes)
  --loopback-address IP  where the node's 127.0.0.1 listeners are reached (default 127.0.0.1:
                         the agent runs on the host network)
  --restarter KIND       host (systemctl/docker, via nsenter when --host-root is not /)
                         or simulation (--simulation-url URL of a simulated node)
  --simulation-url URL
  --kubeconfig FILE      default: in-cluster, or $KUBECONFIG
  --health-port PORT     /healthz, /readyz, /metrics (default 8081; 0 picks a free port)
  --health-host ADDR     default 0.0.0.0
  --cache-sync-timeout SEC  how long to wait for the NodeRotation cache (default 60); past it the
                         agent exits 1 (the kubelet restarts it) rather than look healthy idle
  --distribution D       rke2 or rke (default: $DISTRIBUTION, which the chart sets): enables the
                         certificate inventory; without it the agent only acts on NodeRotations
  --inventory-interval DURATION  how often the inventory reads this node's certificates for /metrics
                         (default 6h, and once at start; 0 turns it off)
`;

async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'node-name': { type: 'string', default: process.env.NODE_NAME },
      'host-root': { type: 'string', default: '/' },
      'data-dir': { type: 'string' },
      'node-ip': { type: 'string', default: process.env.NODE_IP || undefined },
      'loopback-address': { type: 'string' },
      restarter: { type: 'string', default: 'host' },
      'simulation-url': { type: 'string' },
      kubeconfig: { type: 'string' },
      'health-port': { type: 'string', default: '8081' },
      'health-host': { type: 'string', default: '0.0.0.0' },
      'cache-sync-timeout': { type: 'string', default: '60' },
      distribution: { type: 'string', default: process.env.DISTRIBUTION || undefined },
      'inventory-interval': { type: 'string', default: '6h' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const nodeName = values['node-name'];
  if (!nodeName) throw new UsageError('--node-name (or $NODE_NAME) is required');
  const healthPort = Number(values['health-port']);
  if (!Number.isInteger(healthPort) || healthPort < 0) throw new UsageError('--health-port must be a port number');
  const syncSeconds = Number(values['cache-sync-timeout']);
  if (!Number.isFinite(syncSeconds) || syncSeconds <= 0) throw new UsageError('--cache-sync-timeout must be a positive number of seconds');
  const distribution = values.distribution;
  if (distribution !== undefined && !(DISTRIBUTIONS as readonly string[]).includes(distribution)) throw new UsageError(`--distribution must be one of ${DISTRIBUTIONS.join(', ')}`);
  const inventoryMs = inventoryInterval(values['inventory-interval']);
  const executor = executorFor(values.restarter, values['host-root'], values['simulation-url']);

  const log = createLogger({ name: 'certrotator-agent', base: { node: nodeName } });
  const kc = loadKubeConfig({ kubeconfig: values.kubeconfig });
  const nodeIP = values['node-ip'] ?? (await internalIP(kc, nodeName));
  const metrics = createMetrics();
  // Set once the agent runs (below): the agent asks it for a scan after each node it finishes.
  let inventory: NodeInventory | undefined;
  const agent = new NodeAgent({
    kc,
    metrics,
    nodeName,
    agentName: process.env.POD_NAME ?? hostname(),
    runner: new CatalogHostRunner({
      hostRoot: values['host-root'],
      ...(values['data-dir'] ? { dataDir: values['data-dir'].replace(/^\/+/, '') } : {}),
      nodeIP,
      ...(values['loopback-address'] ? { loopbackAddress: values['loopback-address'] } : {}),
      executor,
    }),
    log,
    // The node's certificates changed (or were restored): read them again now, not in six hours.
    onFinished: () => inventory?.scanSoon(),
  });
  const health = await startObservabilityServer({ port: healthPort, host: values['health-host'], informers: [agent.informer], registry: metrics.registry });
  log.info({ nodeIP, healthPort: health.port }, 'agent starting');
  try {
    await agent.start(syncSeconds * 1000);
  } catch (err) {
    // Never look healthy while doing nothing: end with the health server, so the
    // kubelet restarts the pod and the failure shows as a restart count.
    log.error({ err: (err as Error).message }, 'could not start watching NodeRotations; exiting');
    await agent.stop();
    await health.close();
    io.err(`certrotator agent: ${(err as Error).message}\n`);
    return 1;
  }
  io.err(`certrotator agent: watching NodeRotations of node ${nodeName} (health on port ${health.port})\n`);
  // Warning Events on this Node about certificates close to expiry (the inventory's).
  const recorder = new EventRecorder({ kc, component: 'certrotator-agent', instance: nodeName, logger: log });
  // The node's CertificateInventory, named after it (the one place a person looks).
  const publisher = distribution
    ? new InventoryPublisher({ client: makeClients(kc).certificateInventories as unknown as ClusterCustomResource<CertificateInventory & CustomObject>, nodeName, distribution: distribution as Distribution })
    : undefined;
  inventory =
    distribution && inventoryMs > 0
      ? new NodeInventory({
          nodeName,
          distribution: distribution as Distribution,
          hostRoot: values['host-root'],
          ...(values['data-dir'] ? { dataDir: values['data-dir'].replace(/^\/+/, '') } : {}),
          metrics,
          log,
          events: recorder,
          addresses: nodeAddresses({ loopback: values['loopback-address'], nodeIP }),
          publish: async (scan) => {
            const outcome = await publisher!.publish(scan);
            log.debug({ outcome }, 'CertificateInventory of this node');
          },
        })
      : undefined;
  inventory?.start(inventoryMs);

  // SIGTERM (pod deletion, node drain): finish the call in hand, then exit. A
  // rotation cut off anyway is resumed from the host journal by the next agent.
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await inventory?.stop();
  await recorder.close();
  await agent.stop();
  await health.close();
  return 0;
}

async function internalIP(kc: ReturnType<typeof loadKubeConfig>, nodeName: string): Promise<string> {
  const node = await makeClients(kc).core.readNode({ name: nodeName });
  const ip = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!ip) throw new Error(`node ${nodeName} has no InternalIP; pass --node-ip`);
  return ip;
}

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run on a node: carry out the NodeRotations addressed to it',
  usage: USAGE,
  run,
};
