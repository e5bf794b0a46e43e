// An RKE (v1) cluster whose control plane is real: each host is a network
// namespace with its own mounts, in which /etc/kubernetes is the host's own
// tree, so every component reads /etc/kubernetes/ssl exactly as RKE's
// containers do (they bind the host's /etc/kubernetes). Servers run the real
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler with RKE's
// flags (rke-layout.ts) as "containers" of the node's `docker` stand-in
// (docker.ts); the kubelet, kube-proxy and nginx-proxy are stand-ins that use
// the real kubeconfigs and certificates (rke-host-components.ts). The
// certificates are made with openssl from rke-layout.ts's table, and the
// cluster state (kube-system/full-cluster-state) holds them, as RKE keeps it.
//
// Every certrotator agent runs inside its host with host root `/` and the
// catalog's default paths, and restarts through the node's `docker`: the
// production HostCommandExecutor path.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fullClusterStateFromTrees } from '../../src/simulation/rke-state.js';
import { kubectlOk } from '../cluster/kubectl.js';
import { REPO_ROOT } from '../cluster/paths.js';
import { tail } from '../cluster/processes.js';
import { dockerConfigPath, stoppedMarker, type DockerConfig } from './docker-config.js';
import { etcLayer, inNodeWithEtc, type HostNetwork } from './netns.js';
import { RealCluster, startRealCluster, type BaseNode, type RealClusterOptions } from './real-cluster.js';
import { componentKubeconfig, containersFor, heldBy, kubeconfigPath, kubeconfigsFor, makeCa, makeLeaf, rkeLeaves, type PemPair, type RkeHost } from './rke-layout.js';

export interface RkeNode extends BaseNode {
  readonly roles: RkeHost['roles'];
  // Absolute: <dir>/host/etc/kubernetes/ssl, what the node sees as /etc/kubernetes/ssl.
  readonly sslDir: string;
  // Its containers, in the order they are started.
  readonly containers: readonly string[];
}

export class RealRkeCluster extends RealCluster<RkeNode> {
  /** The cluster state as `rke up` would have saved it (with kube-admin, which no host holds). */
  private stateText = '';

  static start(o: RealClusterOptions): Promise<RealRkeCluster> {
    let state = '';
    const startContainers = async (c: RealRkeCluster, nodes: RkeNode[]): Promise<void> => void (await Promise.all(nodes.map((n) => c.docker(n, ['start', ...n.containers]))));
    return startRealCluster<RkeNode, RealRkeCluster>(o, {
      distribution: 'rke',
      serverName: (i) => `rke-server-${i}`,
      workerName: (i) => `rke-worker-${i}`,
      layOut: async (opts, network) => {
        const laid = await layOut(opts, network);
        state = laid.state;
        return laid.nodes;
      },
      // From kube-ca in system:masters, not kube-admin (which a rotation renews).
      testAdmin: (first) => ({ caCert: join(first.sslDir, 'kube-ca.pem'), caKey: join(first.sslDir, 'kube-ca-key.pem'), serverCa: join(first.sslDir, 'kube-ca.pem') }),
      create: (parts) => {
        const cluster = new RealRkeCluster(...parts);
        cluster.stateText = state;
        // Every host's docker daemon first: it restarts what stops, as dockerd's restart policy does.
        for (const n of cluster.nodes) cluster.startInNode(n, 'dockerd', [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test', 'realnode', 'docker.ts'), n.dir, 'daemon'], join(n.dir, 'run', 'logs', 'dockerd.log'));
        return cluster;
      },
      roles: (n) => [...n.roles],
      servers: { progress: 'starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy on every server', start: startContainers },
      workers: { progress: 'starting nginx-proxy, kubelet and kube-proxy on every worker', start: startContainers },
    });
  }

  protected agentArgs(): string[] {
    return [];
  }

  // /etc/kubernetes is the host's own tree, as RKE's containers bind it.
  protected nodeArgv(node: RkeNode, argv: readonly string[]): string[] {
    return inNodeWithEtc(this.hostOf(node), join(node.dir, 'etc-layer'), [{ name: 'kubernetes', source: join(node.dir, 'host', 'etc', 'kubernetes') }], argv);
  }

  /** Runs the node's docker stand-in inside the node, as the agent would. */
  async docker(node: RkeNode, args: string[]): Promise<string> {
    const r = await this.exec(node, [join(node.dir, 'bin', 'docker'), ...args]);
    if (r.code !== 0) throw new Error(`${node.name}: docker ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }

  logOf(node: RkeNode, container: string): string {
    return tail(join(node.dir, 'run', 'logs', `${container}.log`));
  }

  /** Creates kube-system/full-cluster-state as RKE ≥ 1.6 keeps it (a Secret). */
  async saveClusterState(): Promise<void> {
    const file = join(this.o.workDir, 'full-cluster-state.json');
    await fs.writeFile(file, this.stateText, { mode: 0o600 });
    try {
      await kubectlOk(['-n', 'kube-system', 'create', 'secret', 'generic', 'full-cluster-state', `--from-file=full-cluster-state=${file}`], { kubeconfig: this.kubeconfig });
    } finally {
      await fs.rm(file, { force: true });
    }
  }

  /** The cluster state as it is in the cluster now. */
  async readClusterState(): Promise<string> {
    const out = await kubectlOk(['-n', 'kube-system', 'get', 'secret', 'full-cluster-state', '-o', 'jsonpath={.data.full-cluster-state}'], { kubeconfig: this.kubeconfig });
    return Buffer.from(out, 'base64').toString('utf8');
  }
}

async function writeFile(file: string, data: string, mode: number): Promise<void> {
  await fs.mkdir(join(file, '..'), { recursive: true });
  await fs.writeFile(file, data, { mode });
  await fs.chmod(file, mode);
}

async function layOut(o: RealClusterOptions, network: HostNetwork): Promise<{ nodes: RkeNode[]; state: string }> {
  const hosts: RkeHost[] = network.hosts.map((h, i) => ({ name: h.name, ip: h.ip, roles: i < o.servers ? ['etcd', 'controlplane', 'worker'] : ['worker'] }));
  const cas: Record<string, PemPair> = {
    'kube-ca': await makeCa('kube-ca'),
    'kube-apiserver-requestheader-ca': await makeCa('kube-apiserver-requestheader-ca'),
  };
  // cluster.yml authentication.sans: the load balancer's address.
  const leaves = rkeLeaves(hosts, [network.gatewayIP]);
  const pairs = new Map(await Promise.all(leaves.map(async (l) => [l.name, await makeLeaf(l, cas[l.ca]!)] as const)));
  const nodes: RkeNode[] = [];
  for (const [i, h] of hosts.entries()) {
    const dir = join(o.workDir, h.name);
    const sslDir = join(dir, 'host', 'etc', 'kubernetes', 'ssl');
    const cp = h.roles.includes('controlplane');
    // cert-deployer writes every file 0600 (rancher/rke-tools cert-deployer).
    for (const [name, ca] of Object.entries(cas)) {
      if (name !== 'kube-ca' && !cp) continue;
      await writeFile(join(sslDir, `${name}.pem`), ca.certPem, 0o600);
      // pki/deploy.go: the CA keys are stripped on hosts without the controlplane role.
      if (cp) await writeFile(join(sslDir, `${name}-key.pem`), ca.keyPem, 0o600);
    }
    for (const l of leaves.filter((x) => heldBy(x, h))) {
      await writeFile(join(sslDir, `${l.name}.pem`), pairs.get(l.name)!.certPem, 0o600);
      await writeFile(join(sslDir, `${l.name}-key.pem`), pairs.get(l.name)!.keyPem, 0o600);
    }
    for (const c of kubeconfigsFor(h)) await writeFile(join(dir, 'host', kubeconfigPath(c)), componentKubeconfig(c), 0o600);
    etcLayer(join(dir, 'etc-layer'), ['kubernetes']);
    await fs.mkdir(join(dir, 'run', 'logs'), { recursive: true });
    await fs.mkdir(join(dir, 'bin'), { recursive: true });
    const containers = containersFor(h, hosts, {
      etcdDataDir: join(dir, 'run', 'etcd-data'),
      certDir: (c) => join(dir, 'run', `${c}-certs`),
    });
    const config: DockerConfig = { binDir: o.binDir, runDir: join(dir, 'run'), containers };
    // Created, not started (docker create): dockerd starts each on `docker start`.
    await fs.mkdir(join(dir, 'run', 'pods'), { recursive: true });
    for (const c of containers) await fs.writeFile(stoppedMarker(config, c.name), '');
    await fs.writeFile(dockerConfigPath(dir), JSON.stringify(config, null, 2));
    // What `docker` is on this node's PATH.
    await fs.writeFile(
      join(dir, 'bin', 'docker'),
      `#!/bin/sh\ncd '${REPO_ROOT}' && exec '${process.execPath}' --import tsx '${join(REPO_ROOT, 'test', 'realnode', 'docker.ts')}' '${dir}' "$@"\n`,
      { mode: 0o755 },
    );
    nodes.push({ name: h.name, ip: h.ip, netns: network.hosts[i]!.netns, server: cp, dir, roles: h.roles, sslDir, containers: containers.map((c) => c.name) });
  }
  // The state holds every pair (the CA keys from a controlplane host) and
  // kube-admin, which only the state and the workstation's kubeconfig have.
  const workstation = join(o.workDir, 'workstation');
  await writeFile(join(workstation, 'etc', 'kubernetes', 'ssl', 'kube-admin.pem'), pairs.get('kube-admin')!.certPem, 0o600);
  await writeFile(join(workstation, 'etc', 'kubernetes', 'ssl', 'kube-admin-key.pem'), pairs.get('kube-admin')!.keyPem, 0o600);
  const state = await fullClusterStateFromTrees([...nodes.filter((n) => n.server), ...nodes.filter((n) => !n.server)].map((n) => ({ root: join(n.dir, 'host') })).concat({ root: workstation }));
  await fs.rm(workstation, { recursive: true, force: true });
  return { nodes, state };
}
