// scope: Secrets on the real control plane: webhook configurations, a CRD
// conversion webhook, Services, Deployments whose pods kwok runs, and Secrets
// made by openssl; the controller runs with the chart's own ServiceAccount and
// RBAC (secretTargets.enabled=true), and kubectl is the client.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHART } from '../../scripts/deploy-render.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { issueServing, makeCa, type Pem } from '../secrets/webhook-pki.js';
import { claimWebhookAddress, WebhookServer } from '../secrets/webhook-server.js';
import { CONTROLLER_START_MS, ControllerProcess, getRotation, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { tokenKubeconfig } from './support/service-account.js';
import { normSerial, pemSerial, servedPem } from './support/rotation.js';
import type { SecretInfo } from '../../src/controller/secrets/discovery.js';
import { renewServingSecret } from '../../src/controller/secrets/renew-in-place.js';
import { verifyServed } from '../../src/controller/secrets/verify-served.js';
import { probeForWebhook } from '../../src/controller/secrets/probe-request.js';
import { backupOf, restoredFrom } from '../../src/controller/secrets/backup.js';
import { dropCaPatch, trustCaPatch, type JsonPatchOp, type LiveFront } from '../../src/controller/secrets/ca-bundle.js';
import { rollAnnotations, rolloutOf, SERVING_SERIAL_ANNOTATION, type WorkloadState } from '../../src/controller/secrets/rollout.js';

const n = (v: number | undefined): number => v ?? 0;

const NS = 'crt-web';
const RELEASE = 'secrets-e2e';
const RELEASE_NS = 'crt-secrets-e2e';
const SA = `${RELEASE}-certrotator-controller`;
const ROTATION = 'webhooks-plan';
const CRD = 'widgets.crt-e2e.certrotator.io';
const APISERVICE = 'v1beta1.metrics.crt-e2e.certrotator.io';
const PKI_NS = 'crt-pki';
const NEVER = { matchLabels: { 'certrotator-e2e/never': 'true' } }; // no namespace has it: the webhooks are never called
const b64 = (s: string) => Buffer.from(s).toString('base64');
let work: string;
let controller: ControllerProcess;
let controllerKc: string;
let hookLeaf: Pem;
const resourceVersions = new Map<string, string>();

function deployment(name: string, secret: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: 'server', image: 'example.invalid/webhook:1', volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }] }],
          volumes: [{ name: 'tls', secret: { secretName: secret } }],
        },
      },
    },
  };
}

const service = (name: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector: { app: name }, ports: [{ port: 443, targetPort: 8443 }] } });

function tlsSecret(name: string, pair: Pem, extra: { ca?: Pem; annotations?: Record<string, string> } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name, namespace: NS, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
    data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem), ...(extra.ca ? { 'ca.crt': b64(extra.ca.certPem) } : {}) },
  };
}

function webhookConfiguration(kind: 'ValidatingWebhookConfiguration' | 'MutatingWebhookConfiguration', name: string, svc: string, ca: Pem) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name },
    webhooks: [
      {
        name,
        clientConfig: { service: { namespace: NS, name: svc, path: '/validate' }, caBundle: b64(ca.certPem) },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
        namespaceSelector: NEVER,
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
      },
    ],
  };
}

// An APIService that no server answers: the aggregator marks it unavailable
// (kubectl then warns that it cannot list every API group), so it lives only
// as long as this suite.
function apiService(svc: string, ca: Pem) {
  return {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: APISERVICE },
    spec: { group: 'metrics.crt-e2e.certrotator.io', version: 'v1beta1', groupPriorityMinimum: 100, versionPriority: 100, service: { namespace: NS, name: svc, port: 443 }, caBundle: b64(ca.certPem) },
  };
}

function conversionCrd(svc: string, ca: Pem) {
  const version = (name: string, storage: boolean) => ({ name, served: true, storage, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } });
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD },
    spec: {
      group: 'crt-e2e.certrotator.io',
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
      versions: [version('v1', true), version('v2', false)],
      conversion: { strategy: 'Webhook', webhook: { conversionReviewVersions: ['v1'], clientConfig: { service: { namespace: NS, name: svc, path: '/convert' }, caBundle: b64(ca.certPem) } } },
    },
  };
}

const apply = (objects: object[]) => kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });

async function removeWorld(): Promise<void> {
  await kubectl(['delete', 'validatingwebhookconfiguration', 'crt-e2e-hook.certrotator.io', 'crt-e2e-missing.certrotator.io', '--ignore-not-found']);
  await kubectl(['delete', 'mutatingwebhookconfiguration', 'crt-e2e-cm.certrotator.io', '--ignore-not-found']);
  await kubectl(['delete', 'crd', CRD, '--ignore-not-found']);
  await kubectl(['delete', 'apiservice', APISERVICE, '--ignore-not-found']);
  await kubectl(['delete', 'namespace', NS, PKI_NS, '--ignore-not-found', '--wait=false']);
}

beforeAll(async () => {
  await installCrds();
  await kubectl(['delete', 'certificaterotation', ROTATION, '--ignore-not-found', '--wait=true']);
  await removeWorld();
  await waitFor(`namespaces ${NS} and ${PKI_NS} gone`, async () => (await kubectl(['get', 'namespace', NS])).code !== 0 && (await kubectl(['get', 'namespace', PKI_NS])).code !== 0, 60_000);
  work = mkdtempSync(join(tmpdir(), 'secret-targets-e2e-'));

  // Made by openssl: a CA in the cluster with its key, one whose key is not in the cluster, and the serving pairs.
  const hookCa = makeCa({ cn: 'hook-ca' });
  hookLeaf = issueServing(hookCa, { cn: `hook.${NS}.svc`, dns: ['hook', `hook.${NS}`, `hook.${NS}.svc`], days: 90 });
  const outsideCa = makeCa({ cn: 'outside-ca' });
  const orphanLeaf = issueServing(outsideCa, { cn: `orphan.${NS}.svc`, dns: [`orphan.${NS}.svc`], days: 30 });
  const metricsCa = makeCa({ cn: 'metrics-ca' });
  const metricsLeaf = issueServing(metricsCa, { cn: `metrics.${NS}.svc`, dns: [`metrics.${NS}.svc`], days: 120 });
  const cmCa = makeCa({ cn: 'cm-ca' });
  const cmLeaf = issueServing(cmCa, { cn: `cm.${NS}.svc`, dns: [`cm.${NS}.svc`], days: 60 });

  await kubectlOk(['create', 'namespace', NS]);
  await kubectlOk(['create', 'namespace', PKI_NS]);
  await apply([
    // The metrics server's CA lives in another namespace, named by the annotation.
    { ...tlsSecret('metrics-root', metricsCa), metadata: { name: 'metrics-root', namespace: PKI_NS } },
    tlsSecret('metrics-serving', metricsLeaf, { annotations: { 'certrotator.io/ca-secret': `${PKI_NS}/metrics-root` } }),
    deployment('metrics', 'metrics-serving'),
    service('metrics'),
    apiService('metrics', metricsCa),
    tlsSecret('hook-ca', hookCa),
    tlsSecret('hook-tls', hookLeaf, { ca: hookCa }),
    tlsSecret('orphan-tls', orphanLeaf),
    tlsSecret('cm-tls', cmLeaf, { ca: cmCa, annotations: { 'cert-manager.io/certificate-name': 'cm' } }),
    deployment('hook', 'hook-tls'),
    deployment('orphan', 'orphan-tls'),
    deployment('cm', 'cm-tls'),
    service('hook'),
    service('orphan'),
    service('cm'),
    webhookConfiguration('ValidatingWebhookConfiguration', 'crt-e2e-hook.certrotator.io', 'hook', hookCa),
    webhookConfiguration('ValidatingWebhookConfiguration', 'crt-e2e-missing.certrotator.io', 'missing', hookCa),
    webhookConfiguration('MutatingWebhookConfiguration', 'crt-e2e-cm.certrotator.io', 'cm', cmCa),
    conversionCrd('orphan', outsideCa),
  ]);
  for (const d of ['hook', 'orphan', 'cm', 'metrics']) await kubectlOk(['-n', NS, 'rollout', 'status', `deployment/${d}`, '--timeout=60s']);
  for (const s of ['hook-ca', 'hook-tls', 'orphan-tls', 'cm-tls']) {
    resourceVersions.set(s, (await kubectlOk(['-n', NS, 'get', 'secret', s, '-o', 'jsonpath={.metadata.resourceVersion}'])).trim());
  }

  // The chart's controller ServiceAccount and RBAC, with secretTargets enabled, under a release of its own.
  const helm = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
  const rendered = execFileSync(helm, ['template', RELEASE, CHART, '--namespace', RELEASE_NS, '--set', 'secretTargets.enabled=true', '--show-only', 'templates/serviceaccounts.yaml', '--show-only', 'templates/controller-rbac.yaml'], { encoding: 'utf8' });
  const ns = await kubectl(['create', 'namespace', RELEASE_NS]);
  if (ns.code !== 0 && !/AlreadyExists/.test(ns.stderr)) throw new Error(ns.stderr);
  writeFileSync(join(work, 'rbac.yaml'), rendered);
  await kubectlOk(['apply', '-f', join(work, 'rbac.yaml')]);
  const token = (await kubectlOk(['create', 'token', SA, '-n', RELEASE_NS, '--duration=1h'])).trim();
  controllerKc = tokenKubeconfig(process.env.KUBECONFIG!, work, 'secrets-controller', token);
  // The chart's Role allows its own Lease only (controller.leaderElection.leaseName), in the release namespace.
  controller = new ControllerProcess('secrets-e2e', { leaseName: 'certrotator-controller', extraArgs: [`--kubeconfig=${controllerKc}`, `--lease-namespace=${RELEASE_NS}`] });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
}, 240_000);

afterAll(async () => {
  await kubectl(['delete', 'certificaterotation', ROTATION, '--ignore-not-found', '--wait=true']);
  await controller?.stop();
  if (controller) expect(controller.stderr + JSON.stringify(controller.lines)).not.toMatch(/PRIVATE KEY/);
  await removeWorld();
  await kubectl(['delete', '-f', join(work, 'rbac.yaml'), '--ignore-not-found']);
  await kubectl(['delete', 'namespace', RELEASE_NS, '--ignore-not-found', '--wait=false']);
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('scope: Secrets, mode: Plan, on the real control plane', () => {
  let status: any;

  it('plans every Secret-backed certificate in the namespace: Ready=True/Planned, counts, and kubectl get shows the coverage', async () => {
    await kubectlOk(['apply', '-f', '-'], {
      input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: ROTATION }, spec: { scope: 'Secrets', mode: 'Plan', secrets: { namespaces: [NS] } } }),
    });
    await kubectlOk(['wait', `certificaterotation/${ROTATION}`, '--for=condition=Ready', '--timeout=60s']);
    status = (await getRotation(ROTATION)).status;
    expect(status).toMatchObject({ phase: 'Planned', progress: '0/4', secretPlan: { total: 4, renewInPlace: 2, regenerate: 0, leaveAlone: 1, cannotRenew: 1, unresolvedCount: 1 } });
    const table = (await kubectlOk(['get', 'certrotations', ROTATION, '--no-headers'])).trim();
    expect(table).toMatch(new RegExp(`^${ROTATION}\\s+Secrets\\s+Planned\\s+0/4\\s`));
  });

  it('the webhook whose CA key is in the cluster: renew in place, the Deployment through its ReplicaSet, notAfter as openssl reads it', async () => {
    const t = status.secretPlan.targets.find((x: any) => x.secret.name === 'hook-tls');
    const end = execFileSync('openssl', ['x509', '-noout', '-enddate'], { input: hookLeaf.certPem, encoding: 'utf8' }).trim().replace(/^notAfter=/, '');
    expect(t).toEqual({
      secret: { namespace: NS, name: 'hook-tls' },
      fronts: ['ValidatingWebhookConfiguration/crt-e2e-hook.certrotator.io'],
      workload: 'Deployment/hook',
      notAfter: new Date(Date.parse(end)).toISOString().replace('.000Z', 'Z'),
      ca: `${NS}/hook-ca tls.crt`,
      caKeyAvailable: true,
      caBundleCurrent: true,
      action: 'RenewInPlace',
      reason: expect.stringMatching(/^new EC P-256 key, same subject, SANs and usages, signed by the CA in crt-web\/hook-ca tls\.crt, valid (89|90) days/),
    });
  });

  it('the aggregated API (APIService) whose CA an annotation places in another namespace: renew in place', () => {
    const t = status.secretPlan.targets.find((x: any) => x.secret.name === 'metrics-serving');
    expect(t).toMatchObject({ fronts: [`APIService/${APISERVICE}`], workload: 'Deployment/metrics', ca: `${PKI_NS}/metrics-root tls.crt`, caKeyAvailable: true, caBundleCurrent: true, action: 'RenewInPlace' });
  });

  it("the conversion webhook whose CA is only in its caBundle: cannot renew, and says what to do", () => {
    const t = status.secretPlan.targets.find((x: any) => x.secret.name === 'orphan-tls');
    expect(t).toMatchObject({ fronts: [`CustomResourceDefinition/${CRD}`], workload: 'Deployment/orphan', ca: `caBundle of CustomResourceDefinition/${CRD} only`, caKeyAvailable: false, caBundleCurrent: true, action: 'CannotRenew' });
    expect(t.reason).toMatch(/private key is not in the cluster.*certrotator\.io\/ca-secret/);
  });

  it("cert-manager's Secret is listed and left alone, with the reason", () => {
    const t = status.secretPlan.targets.find((x: any) => x.secret.name === 'cm-tls');
    expect(t).toMatchObject({ fronts: ['MutatingWebhookConfiguration/crt-e2e-cm.certrotator.io'], action: 'LeaveAlone', reason: expect.stringContaining(`cert-manager Certificate ${NS}/cm`) });
  });

  it('a webhook that calls a Service that does not exist is reported, not guessed', () => {
    expect(status.secretPlan.unresolved).toEqual([{ front: 'ValidatingWebhookConfiguration/crt-e2e-missing.certrotator.io', reason: `it calls Service ${NS}/missing, which does not exist` }]);
  });

  it('the earliest to expire is listed first, and the Ready message says so', () => {
    expect(status.secretPlan.targets.map((t: any) => t.secret.name)).toEqual(['orphan-tls', 'cm-tls', 'hook-tls', 'metrics-serving']);
    const ready = status.conditions.find((c: any) => c.type === 'Ready');
    expect(ready.message).toMatch(new RegExp(`^planned 4 Secret-backed certificate\\(s\\): 2 renew in place, 0 regenerate, 1 left alone, 1 cannot renew; nothing changed; earliest notAfter \\S+ \\(${NS}/orphan-tls\\); 1 front\\(s\\) could not be followed`));
  });

  it('a plan changes nothing: every Secret keeps its resourceVersion, and no key material is in the status', async () => {
    for (const [s, rv] of resourceVersions) expect((await kubectlOk(['-n', NS, 'get', 'secret', s, '-o', 'jsonpath={.metadata.resourceVersion}'])).trim()).toBe(rv);
    expect(JSON.stringify(status)).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
  });

  it('naming one webhook configuration narrows the plan to its Secret (a new generation, a new plan)', async () => {
    await kubectlOk(['patch', 'certificaterotation', ROTATION, '--type=merge', '-p', JSON.stringify({ spec: { secrets: { namespaces: [NS], webhookConfigurations: ['crt-e2e-hook.certrotator.io'] } } })]);
    let r: any;
    await waitFor('the plan of generation 2', async () => {
      r = await getRotation(ROTATION);
      return r.status.observedGeneration === r.metadata.generation && r.status.phase === 'Planned';
    }, 30_000, () => controller.debug());
    expect(r.status.secretPlan).toMatchObject({ total: 1, renewInPlace: 1 });
    expect(r.status.secretPlan.targets.map((t: any) => t.secret.name)).toEqual(['hook-tls']);
    expect(r.status.secretPlan.unresolved).toBeUndefined();
  });

  it('admission refuses secrets without the scope, the scope without secrets, node fields with it and an unknown builtIn target, each naming the field; builtIn with Apply is admitted', async () => {
    const tryCreate = (spec: object) => kubectl(['create', '--dry-run=server', '-f', '-'], { input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: 'crt-e2e-bad' }, spec }) });
    const cases: [object, RegExp][] = [
      [{ scope: 'Secrets', mode: 'Plan' }, /spec\.secrets is required when spec\.scope is Secrets/],
      [{ scope: 'All', secrets: {} }, /spec\.secrets is only allowed with spec\.scope: Secrets/],
      [{ scope: 'Secrets', mode: 'Plan', secrets: {}, distribution: 'rke2' }, /spec\.distribution does not apply to spec\.scope: Secrets/],
      [{ scope: 'Secrets', mode: 'Plan', secrets: {}, strategy: { nodeSelector: { matchLabels: { a: 'b' } } } }, /spec\.strategy\.nodeSelector does not apply to spec\.scope: Secrets/],
      [{ scope: 'Secrets', mode: 'Plan', secrets: { builtIn: ['istio'] } }, /spec\.secrets\.builtIn\[0\]: Unsupported value: "istio"/],
    ];
    for (const [spec, message] of cases) {
      const r = await tryCreate(spec);
      expect({ spec, code: r.code, stderr: r.stderr }).toEqual({ spec, code: 1, stderr: expect.stringMatching(message) });
    }
    const regenerate = await tryCreate({ scope: 'Secrets', secrets: { builtIn: ['rancher-webhook'] } });
    expect({ code: regenerate.code, stderr: regenerate.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it("the chart's RBAC with secretTargets enabled reads what discovery needs and writes none of it", async () => {
    const can = async (...args: string[]) => (await kubectl(['auth', 'can-i', ...args], { kubeconfig: controllerKc })).code === 0;
    for (const args of [['list', 'secrets', '-n', NS], ['list', 'validatingwebhookconfigurations'], ['list', 'apiservices'], ['list', 'customresourcedefinitions'], ['list', 'endpointslices.discovery.k8s.io', '-n', NS], ['list', 'replicasets.apps', '-n', NS]]) {
      expect({ args, allowed: await can(...args) }).toEqual({ args, allowed: true });
    }
    for (const args of [['create', 'secrets', '-n', NS], ['update', 'secrets', '-n', NS], ['delete', 'secrets', '-n', NS], ['patch', 'validatingwebhookconfigurations'], ['patch', 'deployments.apps', '-n', NS], ['delete', 'pods', '-n', NS], ['update', 'customresourcedefinitions'], ['update', 'apiservices']]) {
      expect({ args, allowed: await can(...args) }).toEqual({ args, allowed: false });
    }
  });

  it('without secretTargets.renew an Apply run stops at its first write, the backup, refused by RBAC: Stalled names it, nothing changed', async () => {
    const name = 'webhooks-apply-readonly';
    await kubectl(['delete', 'certificaterotation', name, '--ignore-not-found', '--wait=true']);
    await kubectlOk(['apply', '-f', '-'], { input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name }, spec: { scope: 'Secrets', mode: 'Apply', secrets: { secretRefs: [{ namespace: NS, name: 'hook-tls' }] } } }) });
    try {
      await kubectlOk(['wait', `certificaterotation/${name}`, '--for=condition=Stalled', '--timeout=90s']);
      const stalled = (await getRotation(name)).status.conditions.find((c: { type: string }) => c.type === 'Stalled');
      expect({ reason: stalled.reason, message: stalled.message }).toEqual({
        reason: 'SecretTargetRolledBack',
        message: expect.stringMatching(new RegExp(`^Secret ${NS}/hook-tls \\(Deployment/hook\\) failed at step Backup and was rolled back: Backup failed: HTTP 403: secrets is forbidden: User "system:serviceaccount:${RELEASE_NS}:${SA}" cannot create resource "secrets".*; nothing was changed`)),
      });
      expect((await kubectlOk(['-n', NS, 'get', 'secret', 'hook-tls', '-o', 'jsonpath={.metadata.resourceVersion}'])).trim()).toBe(resourceVersions.get('hook-tls'));
    } finally {
      await kubectl(['delete', 'certificaterotation', name, '--ignore-not-found', '--wait=true']);
    }
  });
});

// Issue 13 §3/§6 as a piece (the run's Backup and Restore steps use it): the backup
// Secret as the real API server stores it, and its garbage collection.
describe('the backup of a Secret (backup.ts) on the real control plane', () => {
  it('is stored beside the original, restores it exactly, and goes with the rotation that owns it (the real garbage collector)', async () => {
    const OWNER = 'crt-e2e-backup-owner';
    await kubectlOk(['apply', '-f', '-'], { input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: OWNER }, spec: { scope: 'Secrets', mode: 'Plan', secrets: { namespaces: [NS] } } }) });
    const owner = JSON.parse(await kubectlOk(['get', 'certificaterotation', OWNER, '-o', 'json']));
    const original = JSON.parse(await kubectlOk(['-n', NS, 'get', 'secret', 'hook-tls', '-o', 'json']));
    const backup = backupOf(original, { name: OWNER, uid: owner.metadata.uid, generation: owner.metadata.generation });
    const file = join(work, 'backup.json');
    writeFileSync(file, JSON.stringify(backup), { mode: 0o600 });
    try {
      await kubectlOk(['create', '-f', file]);
      // Created again with the same name (a controller that restarted): AlreadyExists, not a second copy.
      expect((await kubectl(['create', '-f', file])).stderr).toMatch(/AlreadyExists/);
    } finally {
      rmSync(file, { force: true });
    }
    const stored = JSON.parse(await kubectlOk(['-n', NS, 'get', 'secret', backup.metadata.name, '-o', 'json']));
    expect(stored.type).toBe('Opaque');
    const restored = restoredFrom(stored);
    // Compared by digest: a failing comparison must not print a private key.
    const digest = (data: Record<string, string>) => createHash('sha256').update(JSON.stringify(Object.entries(data).sort())).digest('hex');
    expect({ type: restored.type, data: digest(restored.data!), labels: restored.metadata.labels }).toEqual({ type: original.type, data: digest(original.data), labels: original.metadata.labels ?? {} });
    // The plan does not take a backup for a target: no pod mounts it.
    await kubectlOk(['wait', `certificaterotation/${OWNER}`, '--for=condition=Ready', '--timeout=60s']);
    const names = (await getRotation(OWNER)).status.secretPlan.targets.map((t: any) => t.secret.name);
    expect(names).toContain('hook-tls');
    expect(names).not.toContain(backup.metadata.name);
    await kubectlOk(['delete', 'certificaterotation', OWNER, '--wait=true']);
    await waitFor('the backup garbage-collected with its rotation', async () => (await kubectl(['-n', NS, 'get', 'secret', backup.metadata.name])).code !== 0, 60_000);
  });
});

// Issue 13 §5 as a piece (the run's Roll and Rollout steps use it): the patch and
// the judgement against the real kube-controller-manager, kwok running the pods.
describe('rolling the owning workload (rollout.ts) on the real control plane', () => {
  it('the restart patch rolls the Deployment; rolloutOf says Done when kubectl rollout status does; the new pod carries the serial', async () => {
    const get = async (): Promise<WorkloadState> => ({ kind: 'Deployment', ...JSON.parse(await kubectlOk(['-n', NS, 'get', 'deployment', 'hook', '-o', 'json'])) });
    const before = await get();
    expect(rolloutOf(before).state).toBe('Done');
    const patch = join(work, 'restart.json');
    writeFileSync(patch, JSON.stringify({ spec: { template: { metadata: { annotations: rollAnnotations('crt-e2e/g1', '0A1B2C3D', new Date()) } } } }));
    await kubectlOk(['-n', NS, 'patch', 'deployment', 'hook', '--type=strategic', '--patch-file', patch]);
    const seen: string[] = [];
    await waitFor('rolloutOf saying Done', async () => {
      const r = rolloutOf(await get());
      if (seen.at(-1) !== r.message) seen.push(r.message);
      return r.state === 'Done';
    }, 60_000, () => seen.join('\n'));
    const after = await get();
    expect(after.metadata.generation).toBe(n(before.metadata.generation) + 1);
    expect(after.status?.observedGeneration).toBe(after.metadata.generation);
    // kubectl's own judgement, without waiting: the same answer.
    expect(await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/hook', '--watch=false'])).toMatch(/successfully rolled out/);
    const pods = JSON.parse(await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app=hook', '-o', 'json'])).items.filter((p: any) => !p.metadata.deletionTimestamp);
    expect(pods.map((p: any) => p.metadata.annotations?.[SERVING_SERIAL_ANNOTATION])).toEqual(['0A1B2C3D']);
  });
});

// The API server is the judge: a real HTTPS webhook that the real
// kube-apiserver calls through its caBundle, and a plan of the same Secret.
// Where the API server's TLS verification fails (a caBundle of another CA, an
// expired certificate), the plan must say so too.
describe("scope: Secrets agrees with the API server's own TLS verification", () => {
  const LIVE = 'crt-live';
  const TARGET_NS = 'crt-live-target'; // the namespace whose ConfigMap creates the webhook sees
  const VWC = 'crt-e2e-live.certrotator.io';
  const PLAN = 'live-plan';
  let claim: ReturnType<typeof claimWebhookAddress>;
  let server: WebhookServer;
  let port: number;
  let liveCa: Pem;
  let otherCa: Pem;
  let livePair: Pem;

  const secret = (pair: Pem) => ({ ...tlsSecret('live-tls', pair), metadata: { name: 'live-tls', namespace: LIVE } });
  const dryRunCreate = () => kubectl(['create', 'configmap', `probe-${Date.now()}`, '-n', TARGET_NS, '--dry-run=server']);

  async function plan(): Promise<any> {
    await kubectl(['delete', 'certificaterotation', PLAN, '--ignore-not-found', '--wait=true']);
    await kubectlOk(['apply', '-f', '-'], { input: stringify({ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name: PLAN }, spec: { scope: 'Secrets', mode: 'Plan', secrets: { namespaces: [LIVE] } } }) });
    await kubectlOk(['wait', `certificaterotation/${PLAN}`, '--for=condition=Ready', '--timeout=60s']);
    return (await getRotation(PLAN)).status;
  }

  async function setCaBundle(ca: Pem): Promise<void> {
    await kubectlOk(['patch', 'validatingwebhookconfiguration', VWC, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: b64(ca.certPem) }])]);
  }

  beforeAll(async () => {
    claim = claimWebhookAddress();
    server = new WebhookServer(claim.address);
    liveCa = makeCa({ cn: 'live-ca' });
    otherCa = makeCa({ cn: 'live-ca' });
    livePair = issueServing(liveCa, { cn: `live.${LIVE}.svc`, dns: [`live.${LIVE}.svc`], days: 200 });
    port = await server.serve(livePair);
    for (const ns of [LIVE, TARGET_NS]) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    await kubectlOk(['create', 'namespace', LIVE]);
    await kubectlOk(['create', 'namespace', TARGET_NS]);
    await kubectlOk(['label', 'namespace', TARGET_NS, 'certrotator-e2e/live=true']);
    await apply([{ ...tlsSecret('live-ca', liveCa), metadata: { name: 'live-ca', namespace: LIVE } }, secret(livePair), { ...deployment('live', 'live-tls'), metadata: { name: 'live', namespace: LIVE } }]);
    await kubectlOk(['-n', LIVE, 'rollout', 'status', 'deployment/live', '--timeout=60s']);
    const pod = (await kubectlOk(['-n', LIVE, 'get', 'pods', '-l', 'app=live', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    // A Service without a selector, its one endpoint this process's server (the pod's stand-in, named by targetRef).
    await apply([
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'live', namespace: LIVE }, spec: { ports: [{ name: 'https', port: 443, targetPort: port }] } },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'live-1', namespace: LIVE, labels: { 'kubernetes.io/service-name': 'live', 'endpointslice.kubernetes.io/managed-by': 'certrotator-e2e' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [claim.address], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: LIVE, name: pod } }],
        ports: [{ name: 'https', port, protocol: 'TCP' }],
      },
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: VWC },
        webhooks: [
          {
            name: VWC,
            clientConfig: { service: { namespace: LIVE, name: 'live', path: '/validate', port: 443 }, caBundle: b64(liveCa.certPem) },
            rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
            namespaceSelector: { matchLabels: { 'certrotator-e2e/live': 'true' } },
            failurePolicy: 'Fail',
            sideEffects: 'None',
            admissionReviewVersions: ['v1'],
            timeoutSeconds: 5,
          },
        ],
      },
    ]);
  }, 180_000);

  afterAll(async () => {
    await kubectl(['delete', 'certificaterotation', PLAN, '--ignore-not-found', '--wait=true']);
    await kubectl(['delete', 'validatingwebhookconfiguration', VWC, '--ignore-not-found']);
    await kubectl(['delete', 'namespace', LIVE, TARGET_NS, '--ignore-not-found', '--wait=false']);
    await server?.stop();
    claim?.release();
  }, 120_000);

  it('a current pair: the API server calls the webhook and the plan says RenewInPlace with the caBundle current (the Deployment found through the EndpointSlice)', async () => {
    const before = server.calls;
    // The webhook configuration takes effect shortly after it is created: the first calls may not reach it yet.
    await waitFor('the API server calling the webhook', async () => (await dryRunCreate()).code === 0 && server.calls > before, 30_000);
    const status = await plan();
    expect(status.secretPlan.targets).toEqual([
      expect.objectContaining({ secret: { namespace: LIVE, name: 'live-tls' }, fronts: [`ValidatingWebhookConfiguration/${VWC}`], workload: 'Deployment/live', caBundleCurrent: true, caKeyAvailable: true, action: 'RenewInPlace' }),
    ]);
  });

  it('a caBundle of another CA with the same name: the API server refuses the certificate, and the plan says the caBundle is not current', async () => {
    await setCaBundle(otherCa);
    let r: Awaited<ReturnType<typeof dryRunCreate>> | undefined;
    await waitFor('the API server refusing the certificate', async () => (r = await dryRunCreate()).code !== 0, 30_000);
    expect(r!.stderr).toMatch(/failed calling webhook "crt-e2e-live\.certrotator\.io".*x509: certificate signed by unknown authority/);
    const status = await plan();
    expect(status.secretPlan.targets[0]).toMatchObject({ secret: { name: 'live-tls' }, caBundleCurrent: false, action: 'RenewInPlace' });
    expect(status.conditions.find((c: any) => c.type === 'Ready').message).toContain('1 with a caBundle that does not trust the certificate served');
    await setCaBundle(liveCa);
    await waitFor('the API server calling the webhook again', async () => (await dryRunCreate()).code === 0, 30_000);
  });

  it('an expired certificate, served: the API server refuses it as expired, and the plan lists it expired, renewable in place', async () => {
    const expired = issueServing(liveCa, { cn: `live.${LIVE}.svc`, dns: [`live.${LIVE}.svc`], days: 30, back: 40 });
    await apply([secret(expired)]);
    await server.serve(expired, port); // the pod restarted with what the Secret holds
    let r: Awaited<ReturnType<typeof dryRunCreate>> | undefined;
    await waitFor('the API server refusing the expired certificate', async () => (r = await dryRunCreate()).code !== 0, 30_000);
    expect(r!.stderr).toMatch(/failed calling webhook "crt-e2e-live\.certrotator\.io".*x509: certificate has expired or is not yet valid/);
    const status = await plan();
    const t = status.secretPlan.targets[0];
    expect(Date.parse(t.notAfter)).toBeLessThan(Date.now());
    expect(t).toMatchObject({ secret: { name: 'live-tls' }, caBundleCurrent: true, action: 'RenewInPlace' });
    expect(status.conditions.find((c: any) => c.type === 'Ready').message).toContain('1 already expired');
  });

  // Issue 13 §3a as a piece: the test does the write the run does (secret-run.e2e
  // runs the whole path), and the API server judges.
  it('the expired pair renewed in place by renewServingSecret, once served, is what the API server calls again; openssl sees the new serial; the next plan finds it current', async () => {
    const read = async (name: string): Promise<SecretInfo> => {
      const o = JSON.parse(await kubectlOk(['-n', LIVE, 'get', 'secret', name, '-o', 'json']));
      return { namespace: LIVE, name, labels: {}, annotations: {}, data: o.data };
    };
    const renewed = await renewServingSecret(await read('live-tls'), { secret: await read('live-ca'), certKey: 'tls.crt', keyKey: 'tls.key' }, new Date());
    // Through a 0600 file, not an argument: a failing kubectl's message must not carry the key.
    const patch = join(work, 'live-tls.patch.json');
    writeFileSync(patch, JSON.stringify({ data: renewed.data }), { mode: 0o600 });
    try {
      await kubectlOk(['-n', LIVE, 'patch', 'secret', 'live-tls', '--type=merge', '--patch-file', patch]);
    } finally {
      rmSync(patch, { force: true });
    }
    // The pod restarted with what the Secret now holds, as the API server returns it.
    const stored = await read('live-tls');
    const text = (k: string): string => Buffer.from(stored.data[k]!, 'base64').toString('utf8');
    await server.serve({ certPem: text('tls.crt'), keyPem: text('tls.key') }, port);
    await waitFor('the API server calling the renewed webhook', async () => (await dryRunCreate()).code === 0, 30_000);
    expect(normSerial(await pemSerial(await servedPem(claim.address, port)))).toBe(normSerial(renewed.serial));
    const t = (await plan()).secretPlan.targets[0];
    expect(t).toMatchObject({ secret: { name: 'live-tls' }, caBundleCurrent: true, action: 'RenewInPlace' });
    // The expired one lived 30 days; so does the renewal, from an hour back.
    expect(Date.parse(t.notAfter) - Date.now()).toBeGreaterThan(29 * 86_400_000);
  });

  // Issue 13 §4 as a piece (the run's Trust and Restore steps use it): the caBundle
  // patches applied as they are computed, and the API server's TLS as the judge.
  it('caBundle patches on the real API server: a new CA trusted beside the old while pods of both serve, the old dropped after; a patch from a stale read is refused', async () => {
    const svc = { namespace: LIVE, name: 'live' };
    const read = async (): Promise<LiveFront> => ({ kind: 'ValidatingWebhookConfiguration', ...JSON.parse(await kubectlOk(['get', 'validatingwebhookconfiguration', VWC, '-o', 'json'])) });
    const patchFile = join(work, 'bundle.patch.json');
    const patch = (ops: JsonPatchOp[]) => {
      writeFileSync(patchFile, JSON.stringify(ops));
      return kubectl(['patch', 'validatingwebhookconfiguration', VWC, '--type=json', '--patch-file', patchFile]);
    };
    const calls = async (what: string, ok: boolean) => waitFor(what, async () => ((await dryRunCreate()).code === 0) === ok, 30_000);
    const oldPair = server.serving!;
    const nextCa = makeCa({ cn: 'live-ca' });
    const nextPair = issueServing(nextCa, { cn: `live.${LIVE}.svc`, dns: [`live.${LIVE}.svc`], days: 90 });

    // Computed from a read, then someone else (a cainjector) writes the bundle first: the `test` op refuses the write.
    const stale = trustCaPatch(await read(), svc, nextCa.certPem);
    await kubectlOk(['patch', 'validatingwebhookconfiguration', VWC, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: b64(liveCa.certPem + otherCa.certPem) }])]);
    const refused = await patch(stale);
    // A failed `test` op is a 422 Invalid, which kubectl prints without the detail.
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/The request is invalid/) });
    expect(trustCaPatch(await read(), svc, liveCa.certPem)).toEqual([]); // unchanged: both CAs the other writer put there

    // Recomputed from a fresh read: the new CA is added, the others kept; pods of either CA are called.
    expect((await patch(trustCaPatch(await read(), svc, nextCa.certPem))).code).toBe(0);
    expect(trustCaPatch(await read(), svc, nextCa.certPem)).toEqual([]);
    await calls('the API server calling the old pod', true);
    await server.serve(nextPair, port);
    await calls('the API server calling the new pod', true);

    // Rolled: the old CA (and the stray one) dropped; a pod still serving the old pair would now be refused.
    for (const ca of [liveCa, otherCa]) expect((await patch(dropCaPatch(await read(), svc, ca.certPem))).code).toBe(0);
    expect(dropCaPatch(await read(), svc, nextCa.certPem)).toEqual([]); // the last CA is never dropped
    await calls('the API server still calling the new pod', true);
    await server.serve(oldPair, port);
    await calls('the API server refusing a pod of the dropped CA', false);
    expect((await dryRunCreate()).stderr).toMatch(/x509: certificate signed by unknown authority/);
    // verify-served.ts (§6) judges the endpoint as the API server just did, for the same reason.
    const bundle = Buffer.from((await read()).webhooks![0]!.clientConfig!.caBundle!, 'base64').toString('utf8');
    const judge = (pair: Pem) => verifyServed([{ address: claim.address, port }], svc, { name: VWC, caBundle: bundle }, new X509Certificate(pair.certPem).serialNumber);
    expect(await judge(oldPair)).toEqual([{ endpoint: `${claim.address}:${port}`, ok: false, reason: expect.stringMatching(/does not verify against the caBundle of crt-e2e-live/) }]);
    await server.serve(nextPair, port);
    await calls('the API server calling the new pod again', true);
    expect(await judge(nextPair)).toEqual([{ endpoint: `${claim.address}:${port}`, ok: true }]);
    rmSync(patchFile, { force: true });
  });

  it('the probe request chosen for the webhook (probe-request.ts) is one the API server really sends through it: the server counts the call', async () => {
    const vwc = JSON.parse(await kubectlOk(['get', 'validatingwebhookconfiguration', VWC, '-o', 'json']));
    const namespaces = JSON.parse(await kubectlOk(['get', 'namespaces', '-o', 'json'])).items.map((n: any) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} }));
    const probe = probeForWebhook(vwc.webhooks[0], namespaces);
    expect(probe).toEqual({ ok: true, request: { kind: 'DryRunCreateConfigMap', namespace: TARGET_NS, labels: {} } });
    const before = server.calls;
    const sent = await kubectl(['create', 'configmap', `certrotator-probe-${Date.now()}`, '-n', TARGET_NS, '--dry-run=server']);
    expect(sent.code).toBe(0);
    expect(server.calls).toBe(before + 1);
    // Nothing was stored.
    expect((await kubectlOk(['get', 'configmaps', '-n', TARGET_NS, '-o', 'name'])).trim().split('\n').filter((l) => l.includes('certrotator-probe'))).toEqual([]);
    // And the same webhook with failurePolicy Ignore is refused as a probe: a passing request would prove nothing.
    expect(probeForWebhook({ ...vwc.webhooks[0], failurePolicy: 'Ignore' }, namespaces)).toMatchObject({ ok: false });
  });
});
