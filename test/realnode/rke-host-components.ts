// Stand-ins for the RKE containers that have no real binary here (kwok is the
// kubelet the API server sees). Each does what certrotator's checks and the
// cluster depend on, with the real files:
//   kubelet      authenticates to the API server with --kubeconfig's client pair
//                (kubecfg-kube-node.yaml: kube-node, by path) and answers its
//                healthz on 127.0.0.1:10248 once it has — a kube-node pair the
//                API server rejects leaves the kubelet unhealthy, as on a host.
//   kube-proxy   the same with kubecfg-kube-proxy.yaml; healthz on --healthz-bind-address:10256.
//   nginx-proxy  a TCP proxy from 127.0.0.1:6443 to the controlplane hosts (args), so
//                127.0.0.1:6443 in the kubeconfigs reaches an API server on a worker.
// The client request is GET /version, which any authenticated identity may make
// (system:public-info-viewer); anonymous requests are refused (--anonymous-auth=false).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { request } from 'node:https';
import { parse } from 'yaml';
import { LoadBalancer } from './load-balancer.js';

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

interface ClientConfig {
  server: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function readKubeconfig(file: string): ClientConfig {
  const k = parse(readFileSync(file, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority': string } }[];
    users: { user: { 'client-certificate': string; 'client-key': string } }[];
  };
  const cluster = k.clusters[0]!.cluster;
  const user = k.users[0]!.user;
  // Read at start, as the components do: a renewed file takes effect on restart.
  return { server: cluster.server, ca: readFileSync(cluster['certificate-authority']), cert: readFileSync(user['client-certificate']), key: readFileSync(user['client-key']) };
}

function getVersion(c: ClientConfig): Promise<number> {
  return new Promise((resolve) => {
    const req = request(new URL('/version', c.server), { ca: c.ca, cert: c.cert, key: c.key, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

const flag = (args: readonly string[], name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

async function client(component: string, args: readonly string[], healthz: { host: string; port: number }): Promise<void> {
  const kubeconfig = flag(args, 'kubeconfig');
  if (!kubeconfig) throw new Error(`${component}: --kubeconfig is required`);
  const config = readKubeconfig(kubeconfig);
  let authenticated = false;
  const server = createServer((_req, res) => (authenticated ? res.writeHead(200).end('ok') : res.writeHead(503).end('not registered with the API server')));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(healthz.port, healthz.host, () => resolve());
  });
  log(`${component} started; healthz on ${healthz.host}:${healthz.port}`);
  let last = -1;
  for (;;) {
    const status = await getVersion(config);
    if (status !== last) log(`${component}: GET ${config.server}/version as ${kubeconfig}: ${status || 'no answer'}`);
    last = status;
    authenticated ||= status === 200;
    await new Promise((r) => setTimeout(r, authenticated ? 10_000 : 1000));
  }
}

async function main(): Promise<void> {
  const [component, ...args] = process.argv.slice(2);
  process.once('SIGTERM', () => process.exit(0));
  switch (component) {
    case 'kubelet':
      return client('kubelet', args, { host: '127.0.0.1', port: 10248 });
    case 'kube-proxy':
      return client('kube-proxy', args, { host: flag(args, 'healthz-bind-address') ?? '0.0.0.0', port: 10256 });
    case 'nginx-proxy': {
      const lb = new LoadBalancer(args.map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), '127.0.0.1');
      await lb.open(6443);
      log(`nginx-proxy: 127.0.0.1:6443 -> ${args.join(' ')}`);
      return;
    }
    default:
      throw new Error(`unknown component ${component}`);
  }
}

main().catch((e: Error) => {
  log(`failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
