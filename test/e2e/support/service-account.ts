// Credentials of the chart's own ServiceAccounts for tests that must prove what
// a component can and cannot do with exactly the RBAC the chart grants: a
// TokenRequest token in a kubeconfig of its own (no client certificate).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { helmTemplate, NAMESPACE } from '../../../scripts/deploy-render.js';
import { kubectl, kubectlOk } from '../../cluster/kubectl.js';

/** A kubeconfig for the cluster of `adminKubeconfig` that authenticates with `token` only. */
export function tokenKubeconfig(adminKubeconfig: string, dir: string, name: string, token: string): string {
  const admin = parse(readFileSync(adminKubeconfig, 'utf8')) as { clusters: { name: string }[] };
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: admin.clusters,
      users: [{ name, user: { token } }],
      contexts: [{ name, context: { cluster: admin.clusters[0]!.name, user: name } }],
      'current-context': name,
    }),
    { mode: 0o600 },
  );
  return path;
}

/**
 * The chart's agent ServiceAccount and RBAC for `distribution`, applied to the
 * cluster as `helm template` renders them, and a kubeconfig with a token of it.
 */
export async function chartAgentKubeconfig(adminKubeconfig: string, dir: string, distribution: 'rke' | 'rke2'): Promise<string> {
  const helm = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
  const rendered = helmTemplate(helm, ['--set', `distribution=${distribution}`, '--show-only', 'templates/serviceaccounts.yaml', '--show-only', 'templates/agent-rbac.yaml']);
  const ns = await kubectl(['create', 'namespace', NAMESPACE], { kubeconfig: adminKubeconfig });
  if (ns.code !== 0 && !/AlreadyExists/.test(ns.stderr)) throw new Error(`create namespace ${NAMESPACE}: ${ns.stderr}`);
  await kubectlOk(['apply', '-f', '-'], { input: rendered, kubeconfig: adminKubeconfig });
  const token = (await kubectlOk(['create', 'token', 'certrotator-agent', '-n', NAMESPACE, '--duration=2h'], { kubeconfig: adminKubeconfig })).trim();
  return tokenKubeconfig(adminKubeconfig, dir, 'certrotator-agent', token);
}
