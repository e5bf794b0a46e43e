import { RealRkeCluster } from './test/realnode/rke-cluster.js';
const bin = process.env.CERTROTATOR_BIN_DIR!;
const work = '/tmp/rkesmoke/w' + Date.now();
const t0 = Date.now();
const c = await RealRkeCluster.start({ workDir: work, binDir: bin, servers: 3, workers: 1 });
console.log('started', (Date.now()-t0)/1000, work);
const s1 = c.servers[0]!;
const status = async () => (await c.exec(s1, ['sh','-c', `ETCDCTL_API=3 ${bin}/etcdctl 2>/dev/null; echo`])).stdout;
void status;
for (const n of c.servers) {
  const t = Date.now();
  console.log(n.name, 'restart etcd:', (await c.docker(n, ['restart', 'etcd'])).trim(), (Date.now()-t)/1000, 's');
  await new Promise((r) => setTimeout(r, 8000));
}
await c.stop();
