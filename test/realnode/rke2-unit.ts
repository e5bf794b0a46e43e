// The rke2-server / rke2-agent unit of one simulated node: what `systemctl start`
// runs. It stands in for the rke2 binary itself (the supervisor and the kubelet
// are not real here); everything it starts as a "static pod" is the real
// Kubernetes binary, reading the node's RKE2 tree.
//
// It behaves as rke2 does at start (rancher/rke2 pkg/rke2/rke2_linux.go, k3s
// pkg/agent/config/config.go, k3s pkg/cluster/https.go):
//   - <data-dir>/force-restart present: remove it and recreate every control-plane
//     static pod (etcd, kube-apiserver, kube-controller-manager, kube-scheduler);
//   - server/tls/dynamic-cert-regenerate present: issue a new supervisor
//     certificate from server-ca and remove the trigger;
//   - the agent's certificates are issued fresh on every start (kubelet client and
//     serving pairs signed for this node; kube-proxy and rke2-controller pairs
//     copied from the server, fetched through a supervisor on an agent);
//   - static pods that are not running are started; running ones are left alone
//     (stopping the unit leaves them running: KillMode=process);
//   - /etc/rancher/rke2/rke2.yaml is rewritten with the current admin pair.
// Listeners: the supervisor on :9345 (servers), the kubelet's :10250 and
// healthz on 127.0.0.1:10248 (kwok is the kubelet for the API server).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fs, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { issueWithOpenssl, type Pair } from './openssl.js';
import { tls, writeAdminKubeconfig, type StaticPod } from './rke2-layout.js';
import { stopProcesses } from '../cluster/processes.js';
import { podPidFile, readUnitConfig, runningPod, unitReadyFile, type UnitConfig } from './unit-config.js';

const KUBERNETES_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

// The kubelet's grace between SIGTERM and SIGKILL. kube-apiserver does not exit
// on SIGTERM while watches are open: its HTTP server waits for them for up to
// --request-timeout (60 s; k8s.io/apiserver pkg/server/config.go ShutdownTimeout),
// and RKE2's static pods set no terminationGracePeriodSeconds (rancher/rke2
// pkg/executor/staticpod), so a real kubelet kills it at 30 s. It has stopped
// listening by then and certrotator waits for the unit whatever it takes, so the
// length proves nothing: 5 s here, where 20 s cost every server restart 20 s.
// etcd keeps a long grace: its graceful stop hands leadership over, and a kill
// would leave the members without a leader for an election timeout.
const POD_STOP_GRACE_MS: Partial<Record<StaticPod['name'], number>> = { 'kube-apiserver': 5_000 };

async function stopPod(c: UnitConfig, pod: StaticPod['name']): Promise<void> {
  const proc = runningPod(c, pod);
  if (!proc) return;
  log(`stopping static pod ${pod} (pid ${proc.pid})`);
  await stopProcesses([proc], POD_STOP_GRACE_MS[pod] ?? 20_000);
}

function startPod(c: UnitConfig, pod: UnitConfig['staticPods'][number]): void {
  const fd = openSync(join(c.runDir, 'logs', `${pod.name}.log`), 'a');
  try {
    const child = spawn(join(c.binDir, pod.name), [...pod.args], { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    writeFileSync(podPidFile(c, pod.name), String(child.pid));
    log(`started static pod ${pod.name} (pid ${child.pid})`);
  } finally {
    closeSync(fd);
  }
}

// What the supervisor hands an agent (k3s pkg/server/handlers: the kubelet pairs
// signed for that node, the kube-proxy and rke2-controller pairs as they are).
async function agentMaterial(c: UnitConfig, node: { name: string; ip: string }): Promise<Record<string, string>> {
  const t = (f: string) => tls(c.dataDir, f);
  const client = await issueWithOpenssl(t('client-ca.crt'), t('client-ca.key'), { cn: `system:node:${node.name}`, o: ['system:nodes'], eku: ['clientAuth'] });
  const serving = await issueWithOpenssl(t('server-ca.crt'), t('server-ca.key'), {
    cn: node.name,
    dns: [node.name, 'localhost'],
    ips: ['127.0.0.1', node.ip],
    eku: ['serverAuth'],
  });
  const read = (f: string) => fs.readFile(t(f), 'utf8');
  return {
    'client-kubelet.crt': client.certPem,
    'client-kubelet.key': client.keyPem,
    'serving-kubelet.crt': serving.certPem,
    'serving-kubelet.key': serving.keyPem,
    'client-kube-proxy.crt': await read('client-kube-proxy.crt'),
    'client-kube-proxy.key': await read('client-kube-proxy.key'),
    'client-rke2-controller.crt': await read('client-rke2-controller.crt'),
    'client-rke2-controller.key': await read('client-rke2-controller.key'),
    'client-ca.crt': await read('client-ca.crt'),
    'server-ca.crt': await read('server-ca.crt'),
  };
}

async function writeAgentFiles(c: UnitConfig, files: Record<string, string>): Promise<void> {
  const dir = join(c.dataDir, 'agent');
  await fs.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const mode = name.endsWith('.key') ? 0o600 : 0o644;
    await fs.writeFile(join(dir, name), text, { mode });
    await fs.chmod(join(dir, name), mode);
  }
}

async function fetchFromSupervisor(c: UnitConfig): Promise<Record<string, string>> {
  const ca = readFileSync(join(c.dataDir, 'agent', 'server-ca.crt'));
  let last: Error | undefined;
  for (const server of c.servers) {
    try {
      return await new Promise((resolve, reject) => {
        const url = new URL(`/v1-rke2/agent-certs?node=${encodeURIComponent(c.nodeName)}&ip=${c.nodeIP}`, server);
        const req = httpsRequest(url, { method: 'POST', ca, timeout: 10_000, checkServerIdentity: () => undefined }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Record<string, string>) : reject(new Error(`${server}: ${res.statusCode} ${body}`))));
        });
        req.on('timeout', () => req.destroy(new Error(`${server}: timed out`)));
        req.on('error', reject);
        req.end();
      });
    } catch (e) {
      last = e as Error;
    }
  }
  throw new Error(`no supervisor answered: ${last?.message}`);
}

async function supervisorCert(c: UnitConfig): Promise<Pair> {
  const file = tls(c.dataDir, 'dynamic-cert.json');
  const trigger = tls(c.dataDir, 'dynamic-cert-regenerate');
  if (existsSync(file) && !existsSync(trigger)) {
    const secret = JSON.parse(readFileSync(file, 'utf8')) as { data: Record<string, string> };
    return { certPem: Buffer.from(secret.data['tls.crt']!, 'base64').toString(), keyPem: Buffer.from(secret.data['tls.key']!, 'base64').toString() };
  }
  log('issuing the supervisor certificate (dynamic-cert-regenerate)');
  const pair = await issueWithOpenssl(tls(c.dataDir, 'server-ca.crt'), tls(c.dataDir, 'server-ca.key'), {
    cn: 'rke2',
    o: ['rke2'],
    dns: [...KUBERNETES_NAMES, ...c.sans.dns],
    ips: [...c.sans.ips],
    eku: ['serverAuth'],
  });
  const secret = {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: { name: 'rke2-serving', namespace: 'kube-system' },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(pair.certPem).toString('base64'), 'tls.key': Buffer.from(pair.keyPem).toString('base64') },
  };
  await fs.writeFile(file, JSON.stringify(secret), { mode: 0o600 });
  await fs.rm(trigger, { force: true });
  return pair;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

async function main(nodeDir: string): Promise<void> {
  const c = readUnitConfig(nodeDir);
  await fs.mkdir(join(c.runDir, 'pods'), { recursive: true });
  await fs.mkdir(join(c.runDir, 'logs'), { recursive: true });
  await fs.rm(unitReadyFile(c), { force: true });
  const servers: Server[] = [];

  if (c.unit === 'rke2-server') {
    const forceRestart = join(c.dataDir, 'force-restart');
    if (existsSync(forceRestart)) {
      log('force-restart present: recreating the control-plane static pods');
      await fs.rm(forceRestart, { force: true });
      for (const pod of [...c.staticPods].reverse()) await stopPod(c, pod.name);
    }
    const supervisor = await supervisorCert(c);
    await writeAgentFiles(c, await agentMaterial(c, { name: c.nodeName, ip: c.nodeIP }));
    for (const pod of c.staticPods) if (!runningPod(c, pod.name)) startPod(c, pod);
    // The kubelet (a child of rke2) restarts a static pod that exits, as
    // restartPolicy Always does: kube-controller-manager exits when it starts
    // before the API server's RBAC bootstrap is done.
    setInterval(() => {
      for (const pod of c.staticPods) if (!runningPod(c, pod.name)) startPod(c, pod);
    }, 3000).unref();
    await writeAdminKubeconfig(c.dataDir, c.adminKubeconfig);
    const sup = createHttpsServer({ cert: supervisor.certPem, key: supervisor.keyPem }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      if (url.pathname === '/ping') return void res.writeHead(200).end('pong');
      if (url.pathname === '/v1-rke2/agent-certs' && req.method === 'POST') {
        agentMaterial(c, { name: url.searchParams.get('node') ?? '', ip: url.searchParams.get('ip') ?? '' }).then(
          (m) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(m)),
          (e: Error) => res.writeHead(500).end(e.message),
        );
        return;
      }
      res.writeHead(404).end();
    });
    await listen(sup, 9345, '0.0.0.0');
    servers.push(sup);
  } else {
    await writeAgentFiles(c, await fetchFromSupervisor(c));
  }

  // The kubelet's own listeners: :10250 with this start's serving certificate, healthz on loopback.
  const agentDir = join(c.dataDir, 'agent');
  const kubelet = createHttpsServer(
    { cert: readFileSync(join(agentDir, 'serving-kubelet.crt')), key: readFileSync(join(agentDir, 'serving-kubelet.key')) },
    (_req, res) => res.writeHead(200).end('ok'),
  );
  await listen(kubelet, 10250, '0.0.0.0');
  const healthz = createHttpServer((_req, res) => res.writeHead(200).end('ok'));
  await listen(healthz, 10248, '127.0.0.1');
  servers.push(kubelet, healthz);

  writeFileSync(unitReadyFile(c), String(process.pid));
  log(`${c.unit} started`);
  process.once('SIGTERM', () => {
    log(`${c.unit} stopping (static pods keep running)`);
    rmSync(unitReadyFile(c), { force: true });
    for (const s of servers) s.close();
    for (const s of servers) s.closeAllConnections?.();
    process.exit(0);
  });
}

const nodeDir = process.argv[2];
if (!nodeDir) {
  process.stderr.write('usage: rke2-unit NODE_DIR\n');
  process.exit(2);
}
main(nodeDir).catch((e: Error) => {
  log(`failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
