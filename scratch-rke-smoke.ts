import { RealRkeCluster } from './test/realnode/rke-cluster.js';
const bin = '/root/.cache/certrotator/bin/k8s-1.36.3_etcd-3.6.16_kwok-0.8.0_helm-3.22.0_go1.26.8';
const work = '/tmp/rkesmoke/w' + Date.now();
const t0 = Date.now();
const c = await RealRkeCluster.start({ workDir: work, binDir: bin, servers: 3, workers: 1, onProgress: (m) => console.log(((Date.now()-t0)/1000).toFixed(1), m) });
console.log('started', (Date.now()-t0)/1000, work);
for (const n of c.nodes) {
  const r = await c.exec(n, ['sh', '-c', 'ls /etc/kubernetes/ssl | head -3; curl -s http://127.0.0.1:10248/healthz; echo; curl -s http://127.0.0.1:10256/healthz; echo; docker ps --format "{{.Names}}" || true']);
  console.log(n.name, r.code, r.stdout, r.stderr);
  console.log(await c.docker(n, ['ps', '--format', '{{.Names}}']));
}
await c.saveClusterState();
console.log((await c.readClusterState()).length);
if (!process.env.KEEP) await c.stop();
