import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stopCluster } from './cluster.js';

export default async function globalTeardown(): Promise<void> {
  const dir = process.env.CERTROTATOR_E2E_CLUSTER_DIR;
  if (!dir) return;
  await stopCluster(dir);
  // Component logs stay for whoever reads a failed CI run; data and keys go.
  for (const entry of readdirSync(dir)) {
    if (!entry.endsWith('.log')) rmSync(join(dir, entry), { recursive: true, force: true });
  }
  process.stderr.write(`[e2e cluster] stopped; component logs kept in ${dir}\n`);
}
