import { stopRealCluster } from './test/realnode/real-cluster.js';
await stopRealCluster(process.argv[2]!);
