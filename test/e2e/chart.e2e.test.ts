// The Helm chart, deploy/ and examples/ against the real control plane, and the
// chart's RBAC proven sufficient and minimal: the controller and an agent run
// with tokens of the chart's ServiceAccounts (TokenRequest) and complete a
// rotation; the same tokens are refused what they must not do.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { HELM_ONLY_LABELS, helmTemplate, NAMESPACE, renderDeploy } from '../../scripts/deploy-render.js';
import { describeError, loadKubeConfig, makeClients, type ClusterCustomResource } from '../../src/kube/client.js';
import { SimulatedFleet } from '../../src/simulation/fleet.js';
import type { InventoryScan } from '../../src/agent/inventory.js';
import { InventoryPublisher } from '../../src/agent/inventory-publisher.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { changedPaths, snapshotTree } from '../../src/simulation/tree.js';
import { runCommand } from '../cluster/command.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { REPO_ROOT } from '../cluster/paths.js';
import type { SimulatedNode as ClusterNode } from '../cluster/nodes.js';
import { argoHealth } from '../gitops/health.js';
import { kstatus } from '../gitops/kstatus.js';
import { CONTROLLER_START_MS, ControllerProcess, getRotation, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { runPhases } from './support/rotation.js';
import { tokenKubeconfig as tokenKubeconfigFor } from './support/service-account.js';
import { cliEntry } from '../../src/simulation/cli-entry.js';

const HELM = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
const CHART = join(REPO_ROOT, 'charts', 'certrotator');
const CONTROLLER_SA = 'certrotator-controller';
const AGENT_SA = 'certrotator-agent';
const LEASE = 'certrotator-controller';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as ClusterNode[];
const NODE = 'rke2-server-1';
const OTHER_NODE = 'rke2-server-2';

const work = mkdtempSync(join(tmpdir(), 'chart-e2e-'));
let rendered = '';

function helm(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };
const docs = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((o) => o && o.kind);
const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} among ${objs.map(key).join(', ')}`);
  return o;
};

/** A kubeconfig for the test cluster that authenticates with `token` (nothing else). */
const tokenKubeconfig = (name: string, token: string): string => tokenKubeconfigFor(process.env.KUBECONFIG!, work, name, token);

/**
 * A ServiceAccount of the release namespace granted `rules` (cluster-wide, or in
 * one namespace), and a kubeconfig with a token of it (TokenRequest): a third
 * identity, neither the controller's nor the agent's.
 */
async function serviceAccountWith(name: string, scope: 'cluster' | string, rules: object[]): Promise<{ kubeconfig: string; remove: () => Promise<void> }> {
  const [role, binding] = scope === 'cluster' ? ['ClusterRole', 'ClusterRoleBinding'] : ['Role', 'RoleBinding'];
  const ns = scope === 'cluster' ? {} : { namespace: scope };
  const yaml = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NAMESPACE } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: role, metadata: { name, ...ns }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: binding,
      metadata: { name, ...ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: role, name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: NAMESPACE }],
    },
  ].map((o) => stringify(o)).join('---\n');
  await kubectlOk(['apply', '-f', '-'], { input: yaml });
  const token = (await kubectlOk(['create', 'token', name, '-n', NAMESPACE, '--duration=1h'])).trim();
  return { kubeconfig: tokenKubeconfig(name, token), remove: async () => void (await kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: yaml })) };
}

async function agentPodOn(node: string): Promise<string> {
  const out = await kubectlOk(['get', 'pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/component=agent', '--field-selector', `spec.nodeName=${node}`, '-o', 'name']);
  const pod = out.trim().split('\n').filter(Boolean)[0];
  if (!pod) throw new Error(`no agent pod on ${node}`);
  return pod.replace(/^pod\//, '');
}

/** A TokenRequest for the agent's ServiceAccount bound to its DaemonSet pod on `node`, as the kubelet mounts it. */
async function agentToken(node: string): Promise<string> {
  const pod = await agentPodOn(node);
  return (await kubectlOk(['create', 'token', AGENT_SA, '-n', NAMESPACE, '--bound-object-kind=Pod', `--bound-object-name=${pod}`, '--duration=1h'])).trim();
}

async function canI(kubeconfig: string, ...args: string[]): Promise<boolean> {
  const r = await kubectl(['auth', 'can-i', ...args], { kubeconfig });
  if (r.code !== 0 && r.stdout.trim() !== 'no') throw new Error(`can-i ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim() === 'yes';
}

beforeAll(async () => {
  await installCrds();
  rendered = helmTemplate(HELM);
}, 60_000);

afterAll(async () => {
  await kubectl(['delete', 'certificaterotations', '-l', 'certrotator.io/test=chart-e2e', '--wait=false']);
  await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: rendered });
  // The suites after this one create NodeRotations as the admin: wait until the
  // API server has dropped the controller-only policy (admission sees a dry run).
  const probe = stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'NodeRotation', metadata: { name: 'chart-e2e-policy-gone' }, spec: { rotation: 'x', generation: 1, runID: 'x-g1', nodeName: NODE, role: 'worker', distribution: 'rke2', scope: 'All', services: [], timeout: '60s' } });
  await waitFor('the NodeRotation policy gone', async () => (await kubectl(['create', '--dry-run=server', '-f', '-'], { input: probe })).code === 0, 30_000);
  await kubectl(['delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=false']);
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('charts/certrotator', () => {
  it('passes helm lint --strict, for rke2, for rke with the capability-only agent, and with the monitoring objects', () => {
    for (const extra of [[], ['--set', 'distribution=rke,agent.privileged=false'], ['--set', 'metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true']]) {
      const r = helm(['lint', '--strict', CHART, ...extra]);
      expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
      expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('values.schema.json refuses values the chart cannot honour', () => {
    for (const [set, why] of [
      ['distribution=k3s', "value must be one of 'rke2', 'rke'"],
      ['controller.replicas=0', 'minimum'],
      ['rke2.dataDir=var/lib/rancher/rke2', 'does not match pattern'],
      ['agent.hostNetwrk=true', 'additional properties'],
      ['metrics.prometheusRule.criticalDays=0', 'minimum'],
      ['metrics.serviceMonitor.interval=1minute', 'does not match pattern'],
    ] as const) {
      const r = helm(['template', 'x', CHART, '--set', set]);
      expect(r.code).not.toBe(0);
      expect(r.stderr.toLowerCase()).toContain(why.toLowerCase());
    }
  });

  it('renders the optional ServiceMonitor and PrometheusRule (off by default): the rules name only metrics certrotator exports', async () => {
    expect(docs(rendered).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1')).toEqual([]);
    const objs = docs(helmTemplate(HELM, ['--set', 'metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.prometheusRule.warningDays=45']));
    const monitor = find(objs, 'ServiceMonitor', 'certrotator');
    // It selects both metrics Services (controller and agent) by their shared labels, on their port name.
    for (const svc of objs.filter((o) => o.kind === 'Service' && /-metrics$/.test(o.metadata.name))) {
      expect(svc.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
      expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain(monitor.spec.endpoints[0].port);
    }
    const rules = find(objs, 'PrometheusRule', 'certrotator').spec.groups.flatMap((g: { rules: unknown[] }) => g.rules) as { alert: string; expr: string; labels: { severity: string } }[];
    expect(rules.map((r) => [r.alert, r.labels.severity])).toEqual([
      ['CertrotatorCertificateExpiringSoon', 'warning'],
      ['CertrotatorCertificateExpiringCritical', 'critical'],
      ['CertrotatorCertificateExpired', 'critical'],
      ['CertrotatorCertificateServedStale', 'warning'],
      ['CertrotatorPolicyStalled', 'warning'],
      ['CertrotatorCertificateReadErrors', 'warning'],
    ]);
    expect(rules[0]!.expr).toContain(`< ${45 * 86400}`);
    expect(rules[1]!.expr).toContain(`< ${7 * 86400}`);
    const exported = new Set((await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name));
    for (const r of rules) for (const name of r.expr.match(/certrotator_[a-z_]+/g) ?? []) expect({ alert: r.alert, name, exported: exported.has(name) }).toEqual({ alert: r.alert, name, exported: true });
    // A ServiceMonitor without the Services it scrapes is refused at render time.
    const r = helm(['template', 'x', CHART, '--set', 'metrics.serviceMonitor.enabled=true,metrics.service.enabled=false']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('metrics.serviceMonitor.enabled needs metrics.service.enabled');
  });

  it('renders the controller and agent as specified', () => {
    const objs = docs(rendered);
    const deploy = find(objs, 'Deployment', 'certrotator-controller');
    expect(deploy.spec.replicas).toBe(2);
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0];
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.resources.requests && c.resources.limits).toBeTruthy();
    expect(c.args).toEqual(expect.arrayContaining(['controller', '--leader-elect=true', `--lease-name=${LEASE}`]));
    // The Role may touch exactly the Lease the controller is told to use.
    const leaseRole = find(objs, 'Role', 'certrotator-controller-leader-election');
    expect(leaseRole.rules[1].resourceNames).toEqual([LEASE]);

    const ds = find(objs, 'DaemonSet', 'certrotator-agent');
    const apod = ds.spec.template.spec;
    expect(apod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(apod.hostPID).toBe(true);
    expect(apod.hostNetwork).toBe(true);
    expect(apod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(apod.volumes[0].hostPath).toEqual({ path: '/var/lib/rancher/rke2', type: 'Directory' });
    expect(apod.containers[0].volumeMounts[0]).toEqual({ name: 'host-data', mountPath: '/host/var/lib/rancher/rke2' });
    expect(apod.containers[0].securityContext).toMatchObject({ privileged: true, readOnlyRootFilesystem: true });
    // Its node's IP from the downward API: the agent needs no access to Node objects.
    expect(apod.containers[0].env).toContainEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
    const rke = docs(helmTemplate(HELM, ['--set', 'distribution=rke,agent.privileged=false']));
    const rpod = find(rke, 'DaemonSet', 'certrotator-agent').spec.template.spec;
    expect(rpod.volumes[0].hostPath.path).toBe('/etc/kubernetes');
    expect(rpod.containers[0].args).toContain('--data-dir=/etc/kubernetes');
    expect(rpod.containers[0].securityContext).toMatchObject({ privileged: false, capabilities: { drop: ['ALL'] } });
    expect(find(objs, 'Service', 'certrotator-controller-metrics').spec.ports[0]).toMatchObject({ port: 8080, targetPort: 'metrics' });
  });

  it('NOTES.txt (helm install, server dry run) says how to watch a rotation', () => {
    const r = helm(['install', 'certrotator', CHART, '--namespace', NAMESPACE, '--dry-run=server', `--kubeconfig=${process.env.KUBECONFIG}`]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    for (const line of ['kubectl get certrotations -w', 'kubectl get noderotations -l certrotator.io/rotation=NAME', 'kubectl wait certrotation/NAME --for=condition=Ready', 'pod-security.kubernetes.io/enforce=privileged']) {
      expect(notes).toContain(line);
    }
  });

  it('applies with --dry-run=server, then for real; the controller and every agent pod are scheduled', async () => {
    await kubectlOk(['apply', '-f', join(REPO_ROOT, 'deploy', 'namespace.yaml')]);
    const dry = await kubectlOk(['apply', '--dry-run=server', '-f', '-'], { input: rendered });
    expect(dry).toContain('daemonset.apps/certrotator-agent created (server dry run)');
    expect(await kubectl(['get', 'daemonset', '-n', NAMESPACE, 'certrotator-agent'])).toMatchObject({ code: 1 });
    await kubectlOk(['apply', '-f', '-'], { input: rendered });
    await kubectlOk(['rollout', 'status', '-n', NAMESPACE, 'deployment/certrotator-controller', '--timeout=120s']);
    await kubectlOk(['rollout', 'status', '-n', NAMESPACE, 'daemonset/certrotator-agent', '--timeout=120s']);
    const ds = JSON.parse(await kubectlOk(['get', 'daemonset', '-n', NAMESPACE, 'certrotator-agent', '-o', 'json']));
    expect(ds.status.desiredNumberScheduled).toBe(nodes.length);
    // The policy compiled (a CEL error would show here and fail every agent write).
    for (const policy of ['certrotator-agent-own-node-only', 'certrotator-controller-noderotations-only']) {
      const vap = JSON.parse(await kubectlOk(['get', 'validatingadmissionpolicy', policy, '-o', 'json']));
      expect(vap.status?.typeChecking?.expressionWarnings ?? []).toEqual([]);
    }
  });
});

describe('deploy/ (plain manifests)', () => {
  it('is what gen:deploy writes from the chart now', () => {
    const want = renderDeploy(HELM);
    const have = new Map<string, string>();
    const walk = (dir: string, rel = ''): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name), `${rel}${e.name}/`);
        else have.set(`${rel}${e.name}`, readFileSync(join(dir, e.name), 'utf8'));
      }
    };
    walk(join(REPO_ROOT, 'deploy'));
    expect([...have.keys()].sort()).toEqual(Object.keys(want).sort());
    for (const [k, text] of Object.entries(want)) expect({ k, text: have.get(k) }).toEqual({ k, text });
  });

  it('`kubectl kustomize deploy/` gives the chart\'s default objects, plus its namespace and CRDs', async () => {
    const kustomized = docs(await kubectlOk(['kustomize', join(REPO_ROOT, 'deploy')]));
    const strip = (o: Obj): Obj => {
      const c = structuredClone(o);
      for (const l of HELM_ONLY_LABELS) delete c.metadata.labels?.[l];
      return c;
    };
    const chart = docs(rendered).map(strip);
    const crds = docs(helmTemplate(HELM, ['--include-crds'])).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.length).toBe(4);
    const expected = new Map([...chart, ...crds].map((o) => [key(o), o]));
    const got = new Map(kustomized.filter((o) => o.kind !== 'Namespace').map((o) => [key(o), o]));
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, o] of expected) expect(got.get(k)).toEqual(o);
    expect(kustomized.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)).toEqual([NAMESPACE]);
  });
});

describe('examples/', () => {
  const examples = readdirSync(join(REPO_ROOT, 'examples')).filter((n) => n.endsWith('.yaml')).sort();

  it('all seven are accepted by the API server (schema and CEL) with --dry-run=server', async () => {
    expect(examples).toEqual(['paused.yaml', 'plan.yaml', 'policy.yaml', 'rancher-webhook.yaml', 'rotate-all.yaml', 'rotate-one-service.yaml', 'rotate-webhooks.yaml']);
    for (const e of examples) {
      const out = await kubectlOk(['apply', '--dry-run=server', '--validate=strict', '-f', join(REPO_ROOT, 'examples', e)]);
      expect(out).toMatch(/certificaterotation(policy)?\.certrotator\.io\/\S+ created \(server dry run\)/);
    }
  });

  it('the same dry run refuses an example made invalid (the check is real)', async () => {
    const broken = parse(readFileSync(join(REPO_ROOT, 'examples', 'rotate-one-service.yaml'), 'utf8'));
    delete broken.spec.service;
    const r = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stringify(broken) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.service is required when spec.scope is Service');
  });
});

describe('RBAC of the chart\'s ServiceAccounts (tokens from TokenRequest)', () => {
  let controllerKc: string;
  let agentKc: string;
  let otherAgentKc: string;
  let unboundAgentKc: string;

  beforeAll(async () => {
    controllerKc = tokenKubeconfig('controller', (await kubectlOk(['create', 'token', CONTROLLER_SA, '-n', NAMESPACE, '--duration=1h'])).trim());
    agentKc = tokenKubeconfig('agent', await agentToken(NODE));
    otherAgentKc = tokenKubeconfig('other-agent', await agentToken(OTHER_NODE));
    unboundAgentKc = tokenKubeconfig('unbound-agent', (await kubectlOk(['create', 'token', AGENT_SA, '-n', NAMESPACE, '--duration=1h'])).trim());
  }, 60_000);

  it('the tokens are the ServiceAccounts, and the pod-bound one carries its node', async () => {
    const who = JSON.parse(await kubectlOk(['auth', 'whoami', '-o', 'json'], { kubeconfig: agentKc }));
    expect(who.status.userInfo.username).toBe(`system:serviceaccount:${NAMESPACE}:${AGENT_SA}`);
    expect(who.status.userInfo.extra['authentication.kubernetes.io/node-name']).toEqual([NODE]);
    const c = JSON.parse(await kubectlOk(['auth', 'whoami', '-o', 'json'], { kubeconfig: controllerKc }));
    expect(c.status.userInfo.username).toBe(`system:serviceaccount:${NAMESPACE}:${CONTROLLER_SA}`);
  });

  it('grants exactly what the code calls', async () => {
    const granted: [string, string[]][] = [
      [controllerKc, ['get', 'certificaterotations']], [controllerKc, ['list', 'certificaterotations']],
      [controllerKc, ['watch', 'certificaterotations']], [controllerKc, ['patch', 'certificaterotations']],
      [controllerKc, ['update', 'certificaterotations', '--subresource=status']],
      // Policies (src/controller/policy/): their rotations created, paused, pruned; the inventories read.
      [controllerKc, ['create', 'certificaterotations']], [controllerKc, ['delete', 'certificaterotations']],
      [controllerKc, ['list', 'certificaterotationpolicies']], [controllerKc, ['watch', 'certificaterotationpolicies']],
      [controllerKc, ['update', 'certificaterotationpolicies', '--subresource=status']],
      [controllerKc, ['list', 'certificateinventories']], [controllerKc, ['watch', 'certificateinventories']],
      [controllerKc, ['list', 'noderotations']], [controllerKc, ['watch', 'noderotations']],
      [controllerKc, ['create', 'noderotations']], [controllerKc, ['delete', 'noderotations']],
      [controllerKc, ['list', 'nodes']], [controllerKc, ['watch', 'nodes']],
      [controllerKc, ['create', 'events', '-n', 'default']], [controllerKc, ['patch', 'events', '-n', 'default']],
      [controllerKc, ['create', 'leases', '-n', NAMESPACE]], [controllerKc, ['get', `leases/${LEASE}`, '-n', NAMESPACE]],
      [controllerKc, ['update', `leases/${LEASE}`, '-n', NAMESPACE]],
      // RKE2 (this install): the Secret inventory reads rke2-serving, by name.
      [controllerKc, ['get', 'secrets/rke2-serving', '-n', 'kube-system']],
      [agentKc, ['get', 'noderotations']], [agentKc, ['list', 'noderotations']], [agentKc, ['watch', 'noderotations']],
      [agentKc, ['patch', 'noderotations', '--subresource=status']], [agentKc, ['get', 'certificaterotations']],
      [agentKc, ['create', 'events', '-n', 'default']], [agentKc, ['patch', 'events', '-n', 'default']],
      [agentKc, ['get', 'certificateinventories']], [agentKc, ['create', 'certificateinventories']], [agentKc, ['update', 'certificateinventories']],
    ];
    const answers = await Promise.all(granted.map(async ([kc, args]) => ({ args, allowed: await canI(kc, ...args) })));
    expect(answers.filter((a) => !a.allowed)).toEqual([]);
    expect(answers.length).toBe(34);
    // RKE runs only (src/controller/rke-kube.ts, rke-run.ts): the cluster state and the run's bundle,
    // by name, and sealing each node's pairs into its NodeRotation. This install is RKE2 (the default): none of it.
    const rke: [string, string[]][] = [
      [controllerKc, ['get', 'secrets/full-cluster-state', '-n', 'kube-system']], [controllerKc, ['update', 'secrets/full-cluster-state', '-n', 'kube-system']],
      [controllerKc, ['get', 'configmaps/full-cluster-state', '-n', 'kube-system']], [controllerKc, ['update', 'configmaps/full-cluster-state', '-n', 'kube-system']],
      [controllerKc, ['create', 'secrets', '-n', NAMESPACE]], [controllerKc, ['get', 'secrets/certrotator-rke-bundle', '-n', NAMESPACE]],
      [controllerKc, ['delete', 'secrets/certrotator-rke-bundle', '-n', NAMESPACE]], [controllerKc, ['patch', 'noderotations']],
    ];
    const onRke2 = await Promise.all(rke.map(async ([kc, args]) => ((await canI(kc, ...args)) ? args.join(' ') : '')));
    expect(onRke2.filter(Boolean)).toEqual([]);
    const rkeRoles = docs(helmTemplate(HELM, ['--set', 'distribution=rke'])).filter((o) => o.kind === 'Role' && /rke-(state|bundle)$/.test(o.metadata.name)).map((o) => o.metadata.name).sort();
    expect(rkeRoles).toEqual(['certrotator-controller-rke-bundle', 'certrotator-controller-rke-state']);
    expect(docs(helmTemplate(HELM, ['--set', 'distribution=rke'])).filter((o) => /rke2-serving/.test(o.metadata?.name ?? ''))).toEqual([]);
    // The agent can read no Secret on RKE either: its pairs come sealed to its own key.
    const agentRules = docs(helmTemplate(HELM, ['--set', 'distribution=rke'])).filter((o) => /Role$/.test(o.kind) && o.metadata.name.startsWith('certrotator-agent')).flatMap((o) => o.rules);
    expect(agentRules.filter((r: any) => r.resources.includes('secrets'))).toEqual([]);
  });

  it('refuses what they must not do: Secrets, CRDs, pods, other Leases, spec writes, other namespaces', async () => {
    const asks: [string, string, string[]][] = [];
    for (const [who, kc] of [['controller', controllerKc], ['agent', agentKc]] as const) {
      for (const args of [
        ['get', 'secrets', '-A'], ['list', 'secrets', '-A'], ['get', 'secrets', '-n', NAMESPACE], ['get', 'secrets', '-n', 'kube-system'],
        ['create', 'customresourcedefinitions'], ['patch', 'customresourcedefinitions'], ['delete', 'customresourcedefinitions'],
        ['create', 'pods', '-n', NAMESPACE], ['create', 'pods/exec', '-n', NAMESPACE], ['patch', 'nodes'], ['delete', 'nodes'],
        ['update', 'leases/other-lease', '-n', NAMESPACE], ['get', 'leases', '-n', 'kube-system'], ['create', 'events', '-n', 'kube-system'],
        ['update', 'noderotations'], ['create', 'certificaterotationpolicies'], ['update', 'certificaterotationpolicies'],
        ['delete', 'certificaterotationpolicies'], ['create', 'validatingadmissionpolicies'], ['delete', 'validatingadmissionpolicybindings'],
        ['create', 'serviceaccounts/token', '-n', NAMESPACE], ['escalate', 'clusterroles'], ['bind', 'clusterroles'],
      ]) asks.push([who, kc, args]);
    }
    for (const args of [
      ['patch', 'noderotations'], ['create', 'noderotations'], ['delete', 'noderotations'], ['list', 'nodes'], ['get', `nodes/${NODE}`],
      ['patch', 'certificaterotations'], ['update', 'certificaterotations', '--subresource=status'], ['delete', 'events', '-n', 'default'],
      ['create', 'events', '-n', NAMESPACE], ['create', 'certificaterotations'], ['delete', 'certificaterotations'],
      ['list', 'certificaterotationpolicies'], ['update', 'certificaterotationpolicies', '--subresource=status'],
    ]) asks.push(['agent', agentKc, args]);
    for (const args of [['patch', 'noderotations', '--subresource=status'], ['update', 'noderotations']]) asks.push(['controller', controllerKc, args]);
    // RKE: nothing beyond the named objects — not other Secrets, not the state for the agent, not writing the bundle for the agent.
    for (const args of [
      ['get', 'secrets/full-cluster-state', '-n', 'kube-system'], ['get', 'configmaps/full-cluster-state', '-n', 'kube-system'],
      ['create', 'secrets', '-n', NAMESPACE], ['delete', 'secrets/certrotator-rke-bundle', '-n', NAMESPACE], ['get', 'secrets/other', '-n', NAMESPACE],
    ]) asks.push(['agent', agentKc, args]);
    for (const args of [
      ['get', 'secrets/other', '-n', NAMESPACE], ['get', 'secrets/other', '-n', 'kube-system'], ['update', 'secrets/certrotator-rke-bundle', '-n', NAMESPACE],
      ['delete', 'secrets/full-cluster-state', '-n', 'kube-system'], ['create', 'secrets', '-n', 'kube-system'], ['list', 'configmaps', '-n', 'kube-system'],
      ['update', 'secrets/rke2-serving', '-n', 'kube-system'], ['watch', 'secrets/rke2-serving', '-n', 'kube-system'],
    ]) asks.push(['controller', controllerKc, args]);
    asks.push(['agent', agentKc, ['get', 'secrets/rke2-serving', '-n', 'kube-system']]);
    // The inventory: an agent never deletes or lists them; the controller does not touch them.
    for (const args of [['delete', 'certificateinventories'], ['list', 'certificateinventories'], ['patch', 'certificateinventories']]) asks.push(['agent', agentKc, args]);
    for (const args of [['create', 'certificateinventories'], ['update', 'certificateinventories'], ['delete', 'certificateinventories'], ['get', 'certificaterotationpolicies']]) {
      asks.push(['controller', controllerKc, args]);
    }
    const allowed = await Promise.all(asks.map(async ([who, kc, args]) => ((await canI(kc, ...args)) ? `${who}: ${args.join(' ')}` : '')));
    expect(allowed.filter(Boolean)).toEqual([]);
    expect(asks.length).toBe(82);
    // And a real request, not only the access review: reading Secrets is a 403.
    const r = await kubectl(['get', 'secrets', '-A'], { kubeconfig: controllerKc });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/forbidden: User "system:serviceaccount:certrotator-system:certrotator-controller" cannot list resource "secrets"/);
    const crd = await kubectl(['delete', 'crd', 'noderotations.certrotator.io', '--dry-run=server'], { kubeconfig: agentKc });
    expect(crd.stderr).toMatch(/forbidden/);
  });

  it("an agent may report only on its own node's NodeRotations (ValidatingAdmissionPolicy on the token's node)", async () => {
    const name = 'chart-e2e-vap-other-node';
    // Created and deleted as the controller: only it may (noderotation-policy.yaml).
    await kubectlOk(['create', '-f', '-'], {
      kubeconfig: controllerKc,
      input: stringify({
        apiVersion: 'certrotator.io/v1alpha1',
        kind: 'NodeRotation',
        metadata: { name, labels: { 'certrotator.io/node': OTHER_NODE, 'certrotator.io/rotation': 'chart-e2e-vap' } },
        spec: { rotation: 'chart-e2e-vap', generation: 1, runID: 'chart-e2e-vap-g1', nodeName: OTHER_NODE, role: 'etcd,controlplane', distribution: 'rke2', scope: 'All', services: [], timeout: '60s' },
      }),
    });
    try {
      // The agent's own call (src/agent/node-agent.ts): a merge patch of the status subresource.
      // (kubectl patch would GET the subresource first, which the agent has no need for.)
      const patch = async (kc: string, message: string): Promise<string> => {
        const client = makeClients(loadKubeConfig({ kubeconfig: kc })).nodeRotations as unknown as ClusterCustomResource<any>;
        try {
          await client.mergePatchStatus(name, { status: { message } });
          return 'ok';
        } catch (err) {
          return describeError(err);
        }
      };
      expect(await patch(agentKc, 'written by the agent of another node')).toContain(
        `may only report on NodeRotations of its own node (this token is for node ${NODE}, the object is for node ${OTHER_NODE})`,
      );
      expect(await patch(unboundAgentKc, 'written with a token bound to no pod')).toContain('none: not bound to a scheduled pod');
      // RBAC allowed both requests; only the policy refused them: the owner's agent gets through.
      expect(await patch(otherAgentKc, 'written by its own agent')).toBe('ok');
      const nr = JSON.parse(await kubectlOk(['get', 'noderotation', name, '-o', 'json']));
      expect(nr.status.message).toBe('written by its own agent');
    } finally {
      await kubectlOk(['delete', 'noderotation', name, '--ignore-not-found'], { kubeconfig: controllerKc });
    }
  });

  it("an agent writes only its own node's CertificateInventory (the agent's own writer, through RBAC and the policy); kubectl get certinv shows it", async () => {
    const publisher = (kc: string, nodeName: string) =>
      new InventoryPublisher({ client: makeClients(loadKubeConfig({ kubeconfig: kc })).certificateInventories as unknown as ClusterCustomResource<any>, nodeName, distribution: 'rke2' });
    const scan = (stale: string[]): InventoryScan => ({
      at: new Date().toISOString(), roles: ['etcd', 'controlplane'], unreadable: [], files: 1, expired: 0, errors: 0, endpoints: 1, stale,
      items: [{ service: 'api-server', path: '/var/lib/rancher/rke2/server/tls/serving-kube-apiserver.crt', notAfter: '2027-02-01T00:00:00.000Z' }, { service: 'etcd', endpoint: '10.1.2.3:2379', notAfter: '2027-01-15T00:00:00.000Z' }],
    });
    const attempt = (p: Promise<unknown>) => p.then((outcome) => String(outcome), (err: unknown) => describeError(err));
    // An earlier suite's agents may have written this node's inventory (suites share node names).
    await kubectlOk(['delete', 'certinv', OTHER_NODE, '--ignore-not-found', '--wait']);
    try {
      expect(await attempt(publisher(agentKc, OTHER_NODE).publish(scan([])))).toContain(
        `may only write the CertificateInventory of its own node (this token is for node ${NODE}, the object is ${OTHER_NODE})`,
      );
      expect(await attempt(publisher(unboundAgentKc, OTHER_NODE).publish(scan([])))).toContain('none: not bound to a scheduled pod');
      // Its own node's: created, then updated when something changed (RBAC get/create/update, the policy lets it through).
      expect(await attempt(publisher(otherAgentKc, OTHER_NODE).publish(scan([])))).toBe('created');
      expect(await attempt(publisher(otherAgentKc, OTHER_NODE).publish(scan([])))).toBe('unchanged');
      expect(await attempt(publisher(otherAgentKc, OTHER_NODE).publish(scan(['etcd 10.1.2.3:2379'])))).toBe('updated');
      const table = (await kubectlOk(['get', 'certinv', OTHER_NODE, '-o', 'wide'])).trim().split('\n');
      expect(table[0]!.split(/\s{2,}/)).toEqual(['NAME', 'ROLES', 'EARLIEST', 'EXPIRES', 'DAYS', 'EXPIRED', 'ERRORS', 'SCANNED', 'PATH', 'ENDPOINT', 'STALE']);
      expect(table[1]).toMatch(new RegExp(`^${OTHER_NODE}\\s+etcd,controlplane\\s+etcd\\s+2027-01-15T00:00:00.000Z\\s+\\d+\\s+0\\s+0\\s+\\S+\\s+10\\.1\\.2\\.3:2379\\s+\\["etcd 10\\.1\\.2\\.3:2379"\\]$`));
    } finally {
      await kubectl(['delete', 'certinv', OTHER_NODE, '--ignore-not-found']);
    }
  });

  it('only the controller creates, changes or deletes NodeRotations: a ServiceAccount that RBAC allows, and a cluster-admin, are refused by the policy', async () => {
    const intruder = 'chart-e2e-intruder';
    const sa = await serviceAccountWith(intruder, 'cluster', [{ apiGroups: ['certrotator.io'], resources: ['noderotations'], verbs: ['get', 'create', 'update', 'patch', 'delete'] }]);
    const intruderKc = sa.kubeconfig;
    const name = 'chart-e2e-forged';
    const forged = stringify({
      apiVersion: 'certrotator.io/v1alpha1',
      kind: 'NodeRotation',
      metadata: { name, labels: { 'certrotator.io/node': NODE, 'certrotator.io/rotation': 'chart-e2e-forged' } },
      spec: { rotation: 'chart-e2e-forged', generation: 1, runID: 'forged-g1', nodeName: NODE, role: 'etcd,controlplane', distribution: 'rke2', scope: 'All', services: [], timeout: '60s' },
    });
    try {
      expect(await canI(intruderKc, 'create', 'noderotations')).toBe(true);
      const refused = `NodeRotations are created, changed and deleted by the certrotator controller only`;
      const asIntruder = await kubectl(['create', '-f', '-'], { kubeconfig: intruderKc, input: forged });
      expect(asIntruder.code).not.toBe(0);
      expect(asIntruder.stderr).toContain(`${refused} (system:serviceaccount:${NAMESPACE}:${intruder} may not create one)`);
      const asAdmin = await kubectl(['create', '-f', '-'], { input: forged });
      expect(asAdmin.code).not.toBe(0);
      expect(asAdmin.stderr).toContain(refused);
      expect((await kubectl(['get', 'noderotation', name])).code).not.toBe(0);
      // The controller's own instruction: created; neither the intruder nor an admin may change or delete it.
      await kubectlOk(['create', '-f', '-'], { kubeconfig: controllerKc, input: forged });
      for (const kc of [intruderKc, process.env.KUBECONFIG!]) {
        const del = await kubectl(['delete', 'noderotation', name], { kubeconfig: kc });
        expect(del.stderr).toMatch(/may not delete one/);
        const edit = await kubectl(['label', 'noderotation', name, 'x=y'], { kubeconfig: kc });
        expect(edit.stderr).toMatch(/may not update one/);
      }
    } finally {
      await kubectl(['delete', 'noderotation', name, '--ignore-not-found'], { kubeconfig: controllerKc });
      await sa.remove();
    }
  });

  it('a replica whose caches cannot sync does not hold its place: the agent exits 1 instead of looking healthy idle; the leader gives up its Lease and exits 1', async () => {
    // An identity that may hold a Lease and nothing else: it leads, but cannot list what it must watch.
    const who = 'chart-e2e-cannot-list';
    const sa = await serviceAccountWith(who, NAMESPACE, [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
    try {
      const kc = sa.kubeconfig;
      const cli = (args: string[]) => runCommand('timeout', ['60', process.execPath, ...cliEntry(), ...args]);
      const [agent, controller] = await Promise.all([
        cli(['agent', '--node-name', NODE, '--node-ip', '127.0.0.1', '--kubeconfig', kc, '--health-port', '0', '--health-host', '127.0.0.1', '--cache-sync-timeout', '3', '--restarter', 'simulation', '--simulation-url', 'http://127.0.0.1:9']),
        cli(['controller', `--kubeconfig=${kc}`, '--metrics-addr=127.0.0.1:0', `--lease-namespace=${NAMESPACE}`, `--lease-name=${who}`, `--identity=${who}`, '--cache-sync-timeout=3']),
      ]);
      expect(`${agent.code} ${agent.stderr}`).toMatch(/^1 [\s\S]*informer noderotations not synced after 3000 ms/);
      expect(agent.stdout).toMatch(/could not start watching NodeRotations; exiting/);
      expect(controller.code).toBe(1); // not 124: it did not hang until `timeout` ended it
      expect(controller.stdout).toMatch(/caches did not sync; giving up leadership and exiting/);
      const lease = JSON.parse(await kubectlOk(['get', 'lease', who, '-n', NAMESPACE, '-o', 'json']));
      expect(lease.spec.holderIdentity ?? '').toBe(''); // released for a standby
    } finally {
      await sa.remove();
      await kubectl(['delete', 'lease', who, '-n', NAMESPACE, '--ignore-not-found']);
    }
  }, 120_000);

  describe('a controller and an agent on these tokens', () => {
    let controller: ControllerProcess;
    let fleet: SimulatedFleet;
    let servingNotAfter: number;
    const node = nodes.find((n) => n.name === NODE)!;

    beforeAll(async () => {
      const others = JSON.parse(await kubectlOk(['get', 'certificaterotations', '-o', 'json'])).items.filter(
        (r: any) => r.status?.phase && !['Succeeded', 'Failed', 'Planned'].includes(r.status.phase),
      );
      expect(others.map((r: any) => r.metadata.name)).toEqual([]); // one rotation at a time: nothing may be queued ahead of ours
      // What dynamiclistener keeps in kube-system on an RKE2 server, made here by openssl (the Secret inventory reads it).
      const tls = mkdtempSync(join(tmpdir(), 'rke2-serving-'));
      const made = await runCommand('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '100', '-subj', '/CN=rke2/O=rke2', '-keyout', join(tls, 'k'), '-out', join(tls, 'c')]);
      expect(made.code).toBe(0);
      servingNotAfter = Math.floor(Date.parse((await runCommand('openssl', ['x509', '-noout', '-enddate', '-in', join(tls, 'c')])).stdout.trim().replace(/^notAfter=/, '')) / 1000);
      await kubectlOk(['-n', 'kube-system', 'create', 'secret', 'tls', 'rke2-serving', `--cert=${join(tls, 'c')}`, `--key=${join(tls, 'k')}`]);
      rmSync(tls, { recursive: true, force: true });
      controller = new ControllerProcess('chart-e2e', {
        leaseName: LEASE,
        extraArgs: [`--kubeconfig=${controllerKc}`, `--lease-namespace=${NAMESPACE}`],
      });
      fleet = await SimulatedFleet.create({
        workDir: join(work, 'fleet'),
        distribution: 'rke2',
        nodes: [{ name: node.name, ip: node.ip, roles: node.roles }],
        kubeconfig: agentKc,
      });
      await fleet.start();
      await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
    }, 180_000);

    afterAll(async () => {
      // Delete while the controller runs, so it lets go of its finalizers.
      await kubectl(['delete', 'certificaterotations', '-l', 'certrotator.io/test=chart-e2e', '--wait=true', '--timeout=60s']);
      await controller?.stop();
      await fleet?.stop();
      await kubectl(['-n', 'kube-system', 'delete', 'secret', 'rke2-serving', '--ignore-not-found']);
      for (const n of fleet?.nodeNames() ?? []) expect(fleet.agentLog(n)).not.toContain('PRIVATE KEY');
    }, 120_000);

    async function applyExample(file: string, patch: (o: any) => void = () => {}): Promise<string> {
      const o = parse(readFileSync(join(REPO_ROOT, 'examples', file), 'utf8'));
      o.metadata.name = `chart-e2e-${o.metadata.name}`;
      o.metadata.labels = { 'certrotator.io/test': 'chart-e2e' };
      patch(o);
      await kubectlOk(['apply', '-f', '-'], { input: stringify(o) });
      return o.metadata.name;
    }

    /** Polls the object until `done`, checking every distinct status seen against kstatus and the Argo CD health check. */
    async function follow(name: string, done: (o: any) => boolean, timeoutMs = 120_000): Promise<{ final: any; seen: string[] }> {
      const seen: string[] = [];
      let last = '';
      let final: any;
      await waitFor(`${name} to finish`, async () => {
        final = await getRotation(name);
        const k = kstatus(final);
        const h = argoHealth(final);
        const sig = `${final.status?.phase}|${k.status}|${h.status}`;
        if (sig !== last) {
          seen.push(sig);
          last = sig;
          // Never "done" for a GitOps tool before the controller saw this generation.
          if (final.status?.observedGeneration !== final.metadata.generation) expect([k.status, h.status]).toEqual(['InProgress', 'Progressing']);
          // kstatus Current exactly when Ready=True (what kubectl wait --for=condition=Ready waits for).
          const ready = final.status?.conditions?.find((c: any) => c.type === 'Ready')?.status === 'True';
          expect({ sig, current: k.status === 'Current' }).toEqual({ sig, current: ready && final.status.observedGeneration === final.metadata.generation });
        }
        return done(final);
      }, timeoutMs, () => `${controller.debug()}\n${fleet.agentLog(NODE).slice(-2000)}`);
      return { final, seen };
    }

    it('rotates one service on one node end to end (example rotate-one-service, narrowed to one node)', async () => {
      const name = await applyExample('rotate-one-service.yaml', (o) => {
        o.spec.strategy = { nodeSelector: { matchLabels: { 'kubernetes.io/hostname': NODE } }, nodeTimeout: '2m' };
      });
      const { final, seen } = await follow(name, (o) => ['Succeeded', 'Failed'].includes(o?.status?.phase));
      expect(final.status.phase).toBe('Succeeded');
      expect(await runPhases(name)).toEqual({ [NODE]: 'Rotated' });
      expect(final.status.counts).toEqual([expect.objectContaining({ planned: 1, rotated: 1 })]);
      expect(seen[0]).toMatch(/\|InProgress\|Progressing$/);
      expect(seen.at(-1)).toBe('Succeeded|Current|Healthy');
      await kubectlOk(['wait', `certificaterotation/${name}`, '--for=condition=Ready', '--timeout=10s']);
      const nr = JSON.parse(await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${name}`, '-o', 'json'])).items;
      expect(nr.map((x: any) => [x.spec.nodeName, x.status.phase])).toEqual([[NODE, 'Rotated']]);
      expect(nr[0].status.files.some((f: any) => f.service === 'api-server' && f.servedVerified === true)).toBe(true);
      // Events went to `default` through the events Role; the Lease through the leader-election Role.
      const events = JSON.parse(await kubectlOk(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${name}`, '-o', 'json'])).items;
      expect(events.length).toBeGreaterThan(0);
      const lease = JSON.parse(await kubectlOk(['get', 'lease', '-n', NAMESPACE, LEASE, '-o', 'json']));
      expect(lease.spec.holderIdentity).toBe('chart-e2e');
      // No RBAC refusal anywhere in the controller's log.
      expect(JSON.stringify(controller.lines)).not.toMatch(/forbidden/i);
      expect(fleet.agentLog(NODE)).not.toMatch(/forbidden/i);
    });

    it("the leader's Secret inventory reads kube-system/rke2-serving with the chart's RBAC: its notAfter on /metrics as openssl reads it", async () => {
      const series = `certrotator_certificate_not_after_timestamp_seconds{service="rke2-server",secret="kube-system/rke2-serving"}`;
      let text = '';
      await waitFor('the Secret inventory on /metrics', async () => (text = await (await fetch(`http://127.0.0.1:${controller.port}/metrics`)).text()).includes(series), 30_000, () => controller.debug());
      expect(text).toContain(`${series} ${servingNotAfter}`);
      expect(text).not.toMatch(/certrotator_certificate_read_errors_total\{[^}]*secret=/);
      expect(text).not.toContain('PRIVATE KEY');
    });

    it('plan mode (example plan): the agent reads the expiry (read-only check), Ready with reason Planned; Healthy and Current', async () => {
      // This fleet has one agent: plan that node only.
      const name = await applyExample('plan.yaml', (o) => {
        o.spec.strategy = { nodeSelector: { matchLabels: { 'kubernetes.io/hostname': NODE } } };
      });
      const before = await snapshotTree(fleet.hostRoot(NODE));
      const { final } = await follow(name, (o) => o?.status?.phase === 'Planned');
      expect(final.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Planned' });
      expect(argoHealth(final).status).toBe('Healthy');
      const [check, ...more] = JSON.parse(await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${name}`, '-o', 'json'])).items;
      expect(more).toEqual([]);
      expect(check.spec).toMatchObject({ action: 'Check', nodeName: NODE });
      expect(check.status.phase).toBe('Checked');
      // The served API server certificate's real notAfter, as openssl reads it from the host file.
      const api = check.status.files.find((f: any) => f.path.endsWith('/serving-kube-apiserver.crt'));
      const enddate = (await runCommand('openssl', ['x509', '-noout', '-enddate', '-in', join(fleet.hostRoot(NODE), api.path)])).stdout.trim().replace(/^notAfter=/, '');
      expect(Date.parse(api.notAfter)).toBe(Date.parse(enddate));
      expect(final.status.plan.earliestExpiry.find((e: any) => e.service === 'api-server')).toMatchObject({ node: NODE });
      expect(final.status.plan.nodes[0].files).toContain(api.path);
      expect(changedPaths(before, await snapshotTree(fleet.hostRoot(NODE)))).toEqual([]); // nothing on the host changed
    });

    it('a paused rotation (example paused) starts no node and reads Suspended; unpaused, the spec change is seen', async () => {
      const name = await applyExample('paused.yaml', (o) => {
        o.spec.strategy.nodeSelector = { matchLabels: { 'kubernetes.io/hostname': NODE } };
        o.spec.service = 'api-server';
      });
      const { final } = await follow(name, (o) => o?.status?.phase === 'Paused' && o.status.observedGeneration === o.metadata.generation);
      expect(argoHealth(final).status).toBe('Suspended');
      expect(kstatus(final).status).toBe('InProgress');
      expect(JSON.parse(await kubectlOk(['get', 'noderotations', '-l', `certrotator.io/rotation=${name}`, '-o', 'json'])).items).toEqual([]);
      await kubectlOk(['patch', 'certificaterotation', name, '--type=merge', '-p', '{"spec":{"paused":false}}']);
      const { final: done } = await follow(name, (o) => ['Succeeded', 'Failed'].includes(o?.status?.phase));
      expect(done.status.phase).toBe('Succeeded');
      expect(argoHealth(done).status).toBe('Healthy');
    });
  });
});
