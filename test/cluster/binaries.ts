// Builds (or reuses) the control-plane binaries by running build-binaries.sh, the
// one implementation of the build shared with .ci/run and `npm run cluster:build`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_SRC_DIR } from './paths.js';

export const COMPONENT_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kwok',
  'helm',
] as const;

/**
 * Returns the directory holding the binaries, building them first if the cache
 * lacks them. Build progress is streamed to stderr (a cold build takes many
 * minutes and must visibly be alive).
 */
export async function ensureBinaries(): Promise<string> {
  const script = join(CLUSTER_SRC_DIR, 'build-binaries.sh');
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`building the test control plane failed (exit ${code}); see the output above`);
  const dir = stdout.trim().split('\n').pop() ?? '';
  for (const bin of COMPONENT_BINARIES) {
    if (!existsSync(join(dir, bin))) throw new Error(`build reported ${dir} but ${bin} is missing there`);
  }
  return dir;
}
