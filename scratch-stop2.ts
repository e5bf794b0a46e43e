import { stopCluster } from './test/cluster/cluster.js';
await stopCluster(process.argv[2]!);
