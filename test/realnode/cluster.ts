// An RKE2 cluster whose control plane is real: each server is a network
// namespace (its own 127.0.0.1, a node IP on a bridge) running the real etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler from its own RKE2
// tree with RKE2's flags (rke2-layout.ts), three etcd members peering over TLS
// between the node IPs. Workers are namespaces with the rke2-agent stand-in.
// kwok is the kubelet for the API server; the rke2 supervisor and the kubelet's
// own ports are stand-ins (rke2-unit.ts). A load balancer in the root namespace
// fronts the three API servers; the controller, kwok and the agents use it.
//
// Every certrotator agent runs inside its node's namespace with host root `/`,
// the node's tree through --data-dir, and `systemctl` on its PATH being the
// node's stand-in: the production HostCommandExecutor path.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { clusterCas, rke2Agent, rke2Server } from '../../src/simulation/fixtures.js';
import { runCommand } from '../cluster/command.js';
import { REPO_ROOT } from '../cluster/paths.js';
import { tail } from '../cluster/processes.js';
import { etcLayer, inNodeWithEtc, type HostNetwork } from './netns.js';
import { RealCluster, startRealCluster, stopNodeProcesses, type BaseNode, type RealClusterOptions } from './real-cluster.js';
import { issueWithOpenssl, writePair } from './openssl.js';
import { etcdConfig, staticPods, tls, writeCredKubeconfigs, type ServerIdentity } from './rke2-layout.js';
import { unitConfigPath, type UnitConfig } from './unit-config.js';

export interface RealNode extends BaseNode {
  // Absolute: <dir>/host/var/lib/rancher/rke2.
  readonly dataDir: string;
  readonly config: UnitConfig;
}

export type { RealClusterOptions } from './real-cluster.js';
export { stopRealCluster } from './real-cluster.js';

const DATA_DIR = 'var/lib/rancher/rke2';

export class RealRke2Cluster extends RealCluster<RealNode> {
  static start(o: RealClusterOptions): Promise<RealRke2Cluster> {
    return startRealCluster<RealNode, RealRke2Cluster>(o, {
      distribution: 'rke2',
      serverName: (i) => `rke2-server-${i}`,
      workerName: (i) => `rke2-agent-${i}`,
      layOut,
      // The tests' admin is from the cluster's client-ca, as rke2's own admin is.
      testAdmin: (first) => ({ caCert: tls(first.dataDir, 'client-ca.crt'), caKey: tls(first.dataDir, 'client-ca.key'), serverCa: tls(first.dataDir, 'server-ca.crt') }),
      create: (parts) => new RealRke2Cluster(...parts),
      roles: (n) => (n.server ? ['etcd', 'controlplane'] : ['worker']),
      servers: {
        progress: 'starting rke2-server on every server (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)',
        start: async (c, nodes) => void (await Promise.all(nodes.map((n) => c.systemctl(n, 'start')))),
      },
      workers: { progress: 'starting rke2-agent on every worker', start: async (c, nodes) => void (await Promise.all(nodes.map((n) => c.systemctl(n, 'start')))) },
    });
  }

  protected agentArgs(n: RealNode): string[] {
    return ['--data-dir', n.dataDir];
  }

  // /etc/rancher is the node's own (rke2.yaml, config.yaml), so the agent finds
  // /etc/rancher/rke2/rke2.yaml where rke2 writes it.
  protected nodeArgv(node: RealNode, argv: readonly string[]): string[] {
    return inNodeWithEtc(this.hostOf(node), join(node.dir, 'etc-layer'), [{ name: 'rancher', source: join(node.dir, 'host', 'etc', 'rancher') }], argv);
  }

  /** A power cut on every node: units and static pods are killed; the network, kwok, the load balancer and any agents stay. */
  async powerOff(): Promise<void> {
    await stopNodeProcesses(this.o.workDir, 0);
  }

  /** Runs the node's systemctl stand-in inside the node, as the agent would. */
  async systemctl(node: RealNode, verb: string): Promise<void> {
    const r = await this.exec(node, [join(node.dir, 'bin', 'systemctl'), verb, node.config.unit]);
    if (r.code !== 0) throw new Error(`${node.name}: systemctl ${verb} ${node.config.unit} failed: ${r.stderr}\n${tail(join(node.dir, 'run', 'logs', `${node.config.unit}.log`))}`);
  }
}

async function layOut(o: RealClusterOptions, network: HostNetwork): Promise<RealNode[]> {
  const hosts = network.hosts;
  const serverIds: ServerIdentity[] = hosts.slice(0, o.servers).map((h) => ({ name: h.name, ip: h.ip }));
  const nodes: RealNode[] = [];
  let first: Awaited<ReturnType<typeof rke2Server>> | undefined;
  // The service-account signing key every server shares (RSA 2048, never rotated).
  const saKey = (await runCommand('openssl', ['genrsa', '2048'])).stdout;
  for (const [i, h] of hosts.entries()) {
    const server = i < o.servers;
    const dir = join(o.workDir, h.name);
    const root = join(dir, 'host');
    const cas = first ? await clusterCas(first) : undefined;
    const fixture = server
      ? await rke2Server(root, { nodeName: h.name, nodeIP: h.ip, roles: ['etcd', 'controlplane'], ...(cas ? { cas } : {}) })
      : await rke2Agent(root, { nodeName: h.name, nodeIP: h.ip, supervisorRoot: first!.root, ...(cas ? { cas } : {}) });
    first ??= fixture;
    const dataDir = join(root, DATA_DIR);
    const self = { name: h.name, ip: h.ip };
    const sans = { dns: ['localhost', h.name], ips: ['127.0.0.1', '::1', h.ip, '10.43.0.1', network.gatewayIP] };
    if (server) {
      // tls-san: the load balancer's address, as an HA install configures it.
      const serving = await issueWithOpenssl(tls(dataDir, 'server-ca.crt'), tls(dataDir, 'server-ca.key'), {
        cn: 'kube-apiserver',
        dns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', ...sans.dns],
        ips: sans.ips,
        eku: ['serverAuth'],
      });
      await writePair(serving, tls(dataDir, 'serving-kube-apiserver.crt'), tls(dataDir, 'serving-kube-apiserver.key'));
      // kube-controller-manager and kube-scheduler make their own cert-dir pairs at first start.
      await fs.rm(tls(dataDir, 'kube-controller-manager'), { recursive: true, force: true });
      await fs.rm(tls(dataDir, 'kube-scheduler'), { recursive: true, force: true });
      for (const f of ['service.key', 'service.current.key']) await fs.writeFile(tls(dataDir, f), saKey, { mode: 0o600 });
      await fs.writeFile(join(dataDir, 'server', 'db', 'etcd', 'config'), etcdConfig(dataDir, self, serverIds, 'new'), { mode: 0o600 });
      await writeCredKubeconfigs(dataDir);
    }
    await fs.mkdir(join(root, 'etc', 'rancher', 'rke2'), { recursive: true });
    etcLayer(join(dir, 'etc-layer'), ['rancher']);
    await fs.mkdir(join(dir, 'bin'), { recursive: true });
    await fs.mkdir(join(dir, 'run', 'logs'), { recursive: true });
    // What `systemctl` is on this node's PATH.
    await fs.writeFile(
      join(dir, 'bin', 'systemctl'),
      `#!/bin/sh\ncd '${REPO_ROOT}' && exec '${process.execPath}' --import tsx '${join(REPO_ROOT, 'test', 'realnode', 'systemctl.ts')}' '${dir}' "$@"\n`,
      { mode: 0o755 },
    );
    const config: UnitConfig = {
      unit: server ? 'rke2-server' : 'rke2-agent',
      nodeName: h.name,
      nodeIP: h.ip,
      dataDir,
      adminKubeconfig: join(root, 'etc', 'rancher', 'rke2', 'rke2.yaml'),
      binDir: o.binDir,
      runDir: join(dir, 'run'),
      servers: serverIds.map((s) => `https://${s.ip}:9345`),
      staticPods: server ? staticPods(dataDir, self) : [],
      sans,
    };
    await fs.writeFile(unitConfigPath(dir), JSON.stringify(config, null, 2));
    nodes.push({ name: h.name, ip: h.ip, netns: h.netns, server, dir, dataDir, config });
  }
  return nodes;
}
