// kwok needs its stage definitions (what a "kubelet" does to nodes and pods) in its
// config file. They ship inside the kwok Go module, which the build already has in
// its module cache, so they are read from there rather than copied into the repo.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { goModCache, readVersions } from './paths.js';

// node-initialize: Ready conditions, keeping the addresses and nodeInfo we set;
// heartbeat-with-lease: keeps nodes Ready by renewing their Lease;
// pod-ready / pod-complete / pod-delete: pods run, Job pods finish, deletions complete.
const STAGES = [
  'node/fast/node-initialize.yaml',
  'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml',
  'pod/fast/pod-ready.yaml',
  'pod/fast/pod-complete.yaml',
  'pod/fast/pod-delete.yaml',
];

export function writeKwokConfig(path: string): void {
  const { kwok } = readVersions();
  const stageDir = join(goModCache(), `sigs.k8s.io/kwok@v${kwok}`, 'kustomize', 'stage');
  const parts = [
    [
      'apiVersion: config.kwok.x-k8s.io/v1alpha1',
      'kind: KwokConfiguration',
      'options:',
      '  cidr: 10.244.0.0/16',
      '  nodeLeaseDurationSeconds: 40',
      // kwok leaves these at zero when a config file is given and then refuses to start.
      '  nodeLeaseParallelism: 4',
      '  nodePlayStageParallelism: 4',
      '  podPlayStageParallelism: 4',
      '  podsOnNodeSyncParallelism: 1',
    ].join('\n'),
  ];
  if (!existsSync(stageDir)) {
    // The binaries can outlive a cleaned module cache; fetching one module is quick.
    execFileSync('go', ['mod', 'download', `sigs.k8s.io/kwok@v${kwok}`], {
      env: { ...process.env, GOMODCACHE: goModCache(), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  for (const stage of STAGES) {
    const file = join(stageDir, stage);
    if (!existsSync(file)) throw new Error(`kwok stage definition ${file} is missing`);
    parts.push(readFileSync(file, 'utf8').trim());
  }
  writeFileSync(path, parts.join('\n---\n') + '\n');
}
