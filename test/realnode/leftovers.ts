// Run by scripts/run-jest.mjs after an interrupted run (`leftovers.ts RUN_DIR`):
// stops every cluster of real components listed in cleanup-list.ts (its
// processes by their recorded PIDs, then its network), then every listed
// network, and removes the clusters' directories as the suites' afterAll would.
// Everything here is idempotent: what is already gone is skipped.
import { rmSync } from 'node:fs';
import { readCleanupList } from './cleanup-list.js';
import { destroyHostNetwork } from './netns.js';
import { stopRealCluster } from './real-cluster.js';

export async function cleanUp(runDir: string): Promise<string[]> {
  const entries = readCleanupList(runDir);
  const failures: string[] = [];
  for (const kind of ['cluster', 'network'] as const) {
    for (const e of entries.filter((x) => x.kind === kind)) {
      try {
        if (kind === 'cluster') {
          await stopRealCluster(e.path);
          // As the suite's afterAll would have: its logs go with it.
          rmSync(e.path, { recursive: true, force: true });
        } else await destroyHostNetwork(e.path);
      } catch (err) {
        failures.push(`${e.kind} ${e.path}: ${(err as Error).message}`);
      }
    }
  }
  return failures;
}

const runDir = process.argv[2];
if (!runDir) {
  process.stderr.write('usage: leftovers.ts RUN_DIR\n');
  process.exit(2);
}
cleanUp(runDir).then(
  (failures) => {
    for (const f of failures) process.stderr.write(`could not clean up ${f}\n`);
    process.exit(failures.length > 0 ? 1 : 0);
  },
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
