// Starts one control plane for every e2e suite of a jest run, in its own directory
// (so it never collides with a cluster from `npm run cluster:up`), and hands its
// kubeconfig and binaries to the test workers through the environment.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNet } from '../../src/simulation/loopback.js';
import { ensureBinaries } from './binaries.js';
import { startCluster, stopCluster } from './cluster.js';

export default async function globalSetup(): Promise<void> {
  // The run's loopback network, claimed here in jest's own process so that every
  // suite shares it and the claim ends with the run (src/simulation/loopback.ts).
  runNet();
  // The real-component suites bring their own clusters (scripts/run-jest.mjs runs
  // them in a lane of their own); a shared control plane would only take CPU.
  if (process.env.CERTROTATOR_E2E_SHARED_CLUSTER === 'off') {
    process.env.CERTROTATOR_BIN_DIR = await ensureBinaries();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'certrotator-e2e-'));
  const log = (m: string): void => void process.stderr.write(`[e2e cluster] ${m}\n`);
  const stopOnSignal = (): void => void stopCluster(dir).finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const state = await startCluster({ dir, onProgress: log });
  process.env.KUBECONFIG = state.kubeconfig;
  process.env.CERTROTATOR_BIN_DIR = state.binDir;
  process.env.CERTROTATOR_E2E_CLUSTER_DIR = dir;
  process.env.CERTROTATOR_E2E_NODES = JSON.stringify(state.nodes);
}
