// `npm run cluster:up [-- --servers N --workers N --distribution rke2|rke]` and
// `npm run cluster:down`. The cluster keeps running in the background after `up`
// returns; its state lives in $CERTROTATOR_CLUSTER_DIR (default ~/.cache/certrotator/cluster).
import { parseArgs } from 'node:util';
import { clusterIsRunning, readClusterState, startCluster, stopCluster } from './cluster.js';
import { defaultClusterDir } from './paths.js';

let interrupted = false;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      servers: { type: 'string', default: '3' },
      workers: { type: 'string', default: '3' },
      distribution: { type: 'string', default: 'rke2' },
      dir: { type: 'string' },
    },
  });
  const dir = values.dir ?? defaultClusterDir();
  const command = positionals[0];
  const log = (m: string): void => void process.stderr.write(`[cluster] ${m}\n`);

  if (command === 'up') {
    const servers = Number(values.servers);
    const workers = Number(values.workers);
    const distribution = values.distribution;
    if (!Number.isInteger(servers) || servers < 0 || !Number.isInteger(workers) || workers < 0) {
      log('--servers and --workers must be whole numbers ≥ 0');
      return 2;
    }
    if (distribution !== 'rke2' && distribution !== 'rke') {
      log(`--distribution must be rke2 or rke, not ${distribution}`);
      return 2;
    }
    // An interrupted `up` must leave nothing running. The start fails as its
    // processes are stopped; the exit is this handler's, when the stop is done.
    const interrupt = (): void => {
      if (interrupted) return;
      interrupted = true;
      log('interrupted: stopping what was started');
      void stopCluster(dir).finally(() => process.exit(130));
    };
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    const state = await startCluster({ dir, topology: { distribution, servers, workers }, onProgress: log });
    process.stdout.write(`export KUBECONFIG=${state.kubeconfig}\n`);
    return 0;
  }
  if (command === 'down') {
    await stopCluster(dir);
    log(`stopped the cluster in ${dir}`);
    return 0;
  }
  if (command === 'status') {
    const state = readClusterState(dir);
    const running = state !== undefined && clusterIsRunning(state);
    process.stdout.write(running ? `running: KUBECONFIG=${state.kubeconfig}\n` : `not running (${dir})\n`);
    return running ? 0 : 1;
  }
  log('usage: cli.ts up [--servers N] [--workers N] [--distribution rke2|rke] | down | status');
  return 2;
}

main().then(
  (code) => {
    if (!interrupted) process.exit(code);
  },
  (err: unknown) => {
    if (interrupted) return;
    process.stderr.write(`[cluster] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
