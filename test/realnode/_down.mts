import { stopRealCluster } from './cluster.ts';
await stopRealCluster(process.argv[2]!);
