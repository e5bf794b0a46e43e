// Installs the CRDs from crds/ into the e2e cluster (idempotent across suites).
import { join } from 'node:path';
import { kubectlOk } from '../../cluster/kubectl.js';
import { REPO_ROOT } from '../../cluster/paths.js';

export async function installCrds(kubeconfig?: string): Promise<void> {
  const opts = kubeconfig ? { kubeconfig } : {};
  await kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', join(REPO_ROOT, 'crds')], opts);
  await kubectlOk([
    'wait', '--for=condition=Established', '--timeout=60s',
    'crd/certificaterotations.certrotator.io', 'crd/noderotations.certrotator.io', 'crd/certificateinventories.certrotator.io',
    'crd/certificaterotationpolicies.certrotator.io',
  ], opts);
}
