// Where the test control plane's binaries, build caches and cluster state live.
// Everything is outside the repo, keyed by the pinned versions in versions.env.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLUSTER_SRC_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(CLUSTER_SRC_DIR, '..', '..');

export interface Versions {
  k8s: string;
  etcd: string;
  kwok: string;
}

export function readVersions(): Versions {
  const text = readFileSync(join(CLUSTER_SRC_DIR, 'versions.env'), 'utf8');
  const value = (key: string): string => {
    const match = text.match(new RegExp(`^${key}=(\\S+)`, 'm'));
    if (!match) throw new Error(`test/cluster/versions.env: ${key} is not set`);
    return match[1]!;
  };
  return { k8s: value('K8S_VERSION'), etcd: value('ETCD_VERSION'), kwok: value('KWOK_VERSION') };
}

export function cacheRoot(): string {
  return process.env.CERTROTATOR_CACHE ?? join(homedir(), '.cache', 'certrotator');
}

/** The directory `cluster:up` keeps its state in (kubeconfig, pki, logs, pids). */
export function defaultClusterDir(): string {
  return process.env.CERTROTATOR_CLUSTER_DIR ?? join(cacheRoot(), 'cluster');
}

/** The Go module cache the build uses; kwok's stage definitions are read from it. */
export function goModCache(): string {
  return process.env.GOMODCACHE_OVERRIDE ?? join(cacheRoot(), 'gomod');
}
