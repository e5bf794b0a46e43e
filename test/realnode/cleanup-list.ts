// The list of what an interrupted test run must clean up (see leftovers.ts).
//
// On SIGINT or SIGTERM (a Ctrl-C, a CI timeout) jest exits without running the
// suites' afterAll, so the clusters of real components they started (etcd,
// kube-apiserver, units, agents inside network namespaces) and their bridges and
// namespaces would stay. Each one is listed as it is made, in the run's directory
// ($CERTROTATOR_TEST_RUN_DIR, set by scripts/run-jest.mjs). Outside a test run
// (the demo, cluster:up) nothing is listed.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type CleanupKind = 'cluster' | 'network';

const listFile = (runDir: string): string => join(runDir, 'leftovers');

/** Lists a cluster's work directory or a network's state file for cleanup after an interruption. */
export function listForCleanup(kind: CleanupKind, path: string): void {
  const runDir = process.env.CERTROTATOR_TEST_RUN_DIR;
  if (runDir && existsSync(runDir)) appendFileSync(listFile(runDir), `${kind} ${path}\n`);
}

export function readCleanupList(runDir: string): { kind: CleanupKind; path: string }[] {
  if (!existsSync(listFile(runDir))) return [];
  return readFileSync(listFile(runDir), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => ({ kind: line.slice(0, line.indexOf(' ')) as CleanupKind, path: line.slice(line.indexOf(' ') + 1) }));
}
