// scope: Secrets, mode: Apply on the real control plane: the controller, with
// the chart's own ServiceAccount and RBAC (secretTargets.enabled and .renew),
// renews a ValidatingWebhookConfiguration's serving Secret in place. kwok runs
// the Deployment's pods, so the webhook server is a real HTTPS process on a
// loopback address behind a Service whose EndpointSlice points at it; like a
// pod, it loads the Secret's current contents when it starts, and it is
// restarted when the Deployment's pods are replaced. The real kube-apiserver
// calls it through the caBundle: whether that works is the API server's TLS
// judgement, and openssl judges the renewed certificate.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHART } from '../../scripts/deploy-render.js';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import { issueServing, makeCa, opensslVerify, type Pem } from '../secrets/webhook-pki.js';
import { claimWebhookAddress, WebhookServer } from '../secrets/webhook-server.js';
import { CONTROLLER_START_MS, ControllerProcess, getRotation, waitFor } from './support/controller.js';
import { installCrds } from './support/crds.js';
import { tokenKubeconfig } from './support/service-account.js';
import { normSerial, pemSerial, servedPem } from './support/rotation.js';

const NS = 'crt-run';
const TARGET_NS = 'crt-run-target'; // where the probe's and the test's ConfigMap creates go
const VWC = 'crt-e2e-run.certrotator.io';
const API_GROUP = 'run.crt-e2e.certrotator.io';
const APISERVICE = `v1beta1.${API_GROUP}`;
const CONV_GROUP = 'conv.crt-e2e.certrotator.io';
const CRD = `gadgets.${CONV_GROUP}`;
const RELEASE = 'secret-run-e2e';
const RELEASE_NS = 'crt-secret-run-e2e';
const SA = `${RELEASE}-certrotator-controller`;
const NODE_LABEL = 'certrotator-e2e/secret-run';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string) => Buffer.from(s, 'base64').toString('utf8');

let work: string;
let claim: ReturnType<typeof claimWebhookAddress>;
let ca: Pem;
let controller: ControllerProcess;
let node: string;
let run: ServedWorkload;
let controllerKc: string;
/** A cert-manager Secret beside the others: renewable in place by what is in the cluster, left alone because cert-manager renews it. */
let certManaged: ServedWorkload;
const CM_VWC = 'crt-e2e-run-cm.certrotator.io';

const dryRunCreate = () => kubectl(['create', 'configmap', `probe-${Date.now()}`, '-n', TARGET_NS, '--dry-run=server']);
const backups = async () => (await kubectlOk(['-n', NS, 'get', 'secrets', '-l', 'certrotator.io/backup-of', '-o', 'name'])).trim();

/**
 * A Deployment whose "container" is an HTTPS server of this process: what the
 * kubelet and the EndpointSlice controller would do for a real pod is done
 * here. When the newest running pod changes, the server restarts with what
 * the Secret holds now, and the Service's EndpointSlice names the new pod.
 */
class ServedWorkload {
  readonly server: WebhookServer;
  port = 0;
  /** Pod names, in the order "their" server started. */
  readonly started: string[] = [];
  private watching = true;
  private loop: Promise<void> | undefined;
  /** What the running pod loaded, for an owner that writes its Secret back when it is deleted. */
  private inMemory: Record<string, string> | undefined;

  /**
   * `owner`: the pod makes its own pair when it starts (returns the Secret's data to
   * serve); while it runs it writes the Secret back from memory if it is deleted,
   * as dynamiclistener does. Without one, the pod loads the Secret as it is.
   */
  constructor(
    readonly app: string,
    readonly secret: string,
    readonly namespace = NS,
    private readonly owner?: () => Promise<Record<string, string>>,
  ) {
    this.server = new WebhookServer(claim.address);
  }

  /** Serves `pair`, applies the Deployment and its Service, and follows the Deployment's pods. */
  async start(pair: Pem): Promise<void> {
    this.port = await this.server.serve(pair);
    await apply([this.deployment(), { apiVersion: 'v1', kind: 'Service', metadata: { name: this.app, namespace: this.namespace }, spec: { ports: [{ name: 'https', port: 443, targetPort: this.port }] } }]);
    await kubectlOk(['-n', this.namespace, 'rollout', 'status', `deployment/${this.app}`, '--timeout=60s']);
    this.loop = this.follow();
    await waitFor(`the ${this.app} pod followed by its server`, () => this.started.length > 0, 30_000);
  }

  async stop(): Promise<void> {
    this.watching = false;
    await this.loop;
    await this.server.stop();
  }

  async secretData(): Promise<Record<string, string>> {
    return JSON.parse(await kubectlOk(['-n', this.namespace, 'get', 'secret', this.secret, '-o', 'json'])).data;
  }

  async templateAnnotations(): Promise<Record<string, string>> {
    return JSON.parse(await kubectlOk(['-n', this.namespace, 'get', 'deployment', this.app, '-o', 'json'])).spec.template.metadata.annotations ?? {};
  }

  async servedSerial(): Promise<string> {
    return normSerial(await pemSerial(await servedPem(claim.address, this.port)));
  }

  private deployment() {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: this.app, namespace: this.namespace },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: this.app } },
        template: {
          metadata: { labels: { app: this.app } },
          spec: {
            automountServiceAccountToken: false,
            nodeSelector: { [NODE_LABEL]: 'true' },
            containers: [{ name: 'server', image: 'example.invalid/webhook:1', volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }] }],
            volumes: [{ name: 'tls', secret: { secretName: this.secret } }],
          },
        },
      },
    };
  }

  private async runningPod(): Promise<string | undefined> {
    const pods = JSON.parse(await kubectlOk(['-n', this.namespace, 'get', 'pods', '-l', `app=${this.app}`, '-o', 'json'])).items as { metadata: { name: string; deletionTimestamp?: string; creationTimestamp: string }; status?: { phase?: string } }[];
    const live = pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running').sort((a, b) => (a.metadata.creationTimestamp < b.metadata.creationTimestamp ? 1 : -1));
    return live[0]?.metadata.name;
  }

  private async follow(): Promise<void> {
    let current: string | undefined;
    while (this.watching) {
      const pod = await this.runningPod().catch(() => undefined);
      if (pod && pod !== current) {
        const data = this.owner ? await this.owner() : await this.secretData();
        this.inMemory = data;
        await this.server.serve({ certPem: text(data['tls.crt']!), keyPem: text(data['tls.key']!) }, this.port);
        await apply([this.endpointSlice(pod)]);
        current = pod;
        this.started.push(pod);
      } else if (this.owner && this.inMemory) {
        const there = await kubectl(['-n', this.namespace, 'get', 'secret', this.secret, '-o', 'name']);
        if (there.code !== 0 && /NotFound/.test(there.stderr)) await kubectl(['create', '-f', '-'], { input: stringify(tlsSecret(this.secret, this.inMemory, this.namespace)) });
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  private endpointSlice(pod: string) {
    return {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${this.app}-1`, namespace: this.namespace, labels: { 'kubernetes.io/service-name': this.app, 'endpointslice.kubernetes.io/managed-by': 'certrotator-e2e' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [claim.address], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: this.namespace, name: pod } }],
      ports: [{ name: 'https', port: this.port, protocol: 'TCP' }],
    };
  }
}

const apply = (objects: object[]) => kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
/** A kubernetes.io/tls Secret of a pair, or of data already base64 (what a Secret held). */
const tlsSecret = (name: string, pair: Pem | Record<string, string>, namespace = NS) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  type: 'kubernetes.io/tls',
  metadata: { name, namespace },
  data: 'certPem' in pair ? { 'tls.crt': b64(pair.certPem as string), 'tls.key': b64(pair.keyPem as string) } : pair,
});

/**
 * A webhook configuration with one webhook on ConfigMap creates in the namespaces
 * labelled `namespaceLabel=true`, calling `service` on 443 through `caBundle` (base64).
 */
function configMapWebhook(kind: 'ValidatingWebhookConfiguration' | 'MutatingWebhookConfiguration', name: string, webhook: string, service: { namespace: string; name: string; path: string }, caBundle: string, namespaceLabel: string, failurePolicy = 'Fail') {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name },
    webhooks: [
      {
        name: webhook,
        clientConfig: { service: { ...service, port: 443 }, caBundle },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
        namespaceSelector: { matchLabels: { [namespaceLabel]: 'true' } },
        failurePolicy,
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 5,
      },
    ],
  };
}

function rotation(name: string, nodeTimeout: string, secrets: object = { namespaces: [NS] }) {
  return { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name }, spec: { scope: 'Secrets', mode: 'Apply', secrets, strategy: { nodeTimeout } } };
}

beforeAll(async () => {
  await installCrds();
  for (const r of ['run-ok', 'run-stuck', 'run-expired', 'run-apiservice', 'run-conversion', 'run-rancher']) await kubectl(['delete', 'certificaterotation', r, '--ignore-not-found', '--wait=true']);
  await kubectl(['delete', 'validatingwebhookconfiguration', VWC, '--ignore-not-found']);
  await kubectl(['delete', 'apiservice', APISERVICE, '--ignore-not-found']);
  await kubectl(['delete', 'crd', CRD, '--ignore-not-found']);
  for (const ns of [NS, TARGET_NS]) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true', '--timeout=60s']);
  work = mkdtempSync(join(tmpdir(), 'secret-run-e2e-'));

  // Made by openssl: the CA (its key in the cluster, so the Secret is renewable in place) and a pair 20 days into its 30.
  ca = makeCa({ cn: 'run-ca' });
  const original = issueServing(ca, { cn: `run.${NS}.svc`, dns: ['run', `run.${NS}`, `run.${NS}.svc`], days: 30, back: 20 });
  claim = claimWebhookAddress();

  // One node carries the label the Deployments' pods need: taking it away later makes new pods unschedulable.
  node = (await kubectlOk(['get', 'nodes', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  await kubectlOk(['label', 'node', node, `${NODE_LABEL}=true`, '--overwrite']);
  await kubectlOk(['create', 'namespace', NS]);
  await kubectlOk(['create', 'namespace', TARGET_NS]);
  await kubectlOk(['label', 'namespace', TARGET_NS, 'certrotator-e2e/run=true']);
  await apply([tlsSecret('run-ca', ca), tlsSecret('run-tls', original)]);
  run = new ServedWorkload('run', 'run-tls');
  await run.start(original);
  await apply([configMapWebhook('ValidatingWebhookConfiguration', VWC, VWC, { namespace: NS, name: 'run', path: '/validate' }, b64(ca.certPem), 'certrotator-e2e/run')]);
  const before = run.server.calls;
  await waitFor('the API server calling the webhook', async () => (await dryRunCreate()).code === 0 && run.server.calls > before, 30_000);

  const cmCa = makeCa({ cn: 'cm-run-ca' });
  const cmPair = issueServing(cmCa, { cn: `cm-run.${NS}.svc`, dns: [`cm-run.${NS}.svc`], days: 30, back: 25 });
  const cmSecret = tlsSecret('cm-run-tls', cmPair);
  await apply([tlsSecret('cm-run-ca', cmCa), { ...cmSecret, metadata: { ...cmSecret.metadata, annotations: { 'cert-manager.io/certificate-name': 'cm-run' } } }]);
  certManaged = new ServedWorkload('cm-run', 'cm-run-tls');
  await certManaged.start(cmPair);
  await apply([configMapWebhook('ValidatingWebhookConfiguration', CM_VWC, CM_VWC, { namespace: NS, name: 'cm-run', path: '/validate' }, b64(cmCa.certPem), 'certrotator-e2e/never', 'Ignore')]);

  // The chart's controller ServiceAccount and RBAC, with secretTargets enabled, renew and regenerate on, under a release of its own.
  const helm = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
  const rendered = execFileSync(helm, ['template', RELEASE, CHART, '--namespace', RELEASE_NS, '--set', 'secretTargets.enabled=true', '--set', 'secretTargets.renew=true', '--set', 'secretTargets.regenerate=true', '--show-only', 'templates/serviceaccounts.yaml', '--show-only', 'templates/controller-rbac.yaml'], { encoding: 'utf8' });
  const ns = await kubectl(['create', 'namespace', RELEASE_NS]);
  if (ns.code !== 0 && !/AlreadyExists/.test(ns.stderr)) throw new Error(ns.stderr);
  writeFileSync(join(work, 'rbac.yaml'), rendered);
  await kubectlOk(['apply', '-f', join(work, 'rbac.yaml')]);
  const token = (await kubectlOk(['create', 'token', SA, '-n', RELEASE_NS, '--duration=1h'])).trim();
  controllerKc = tokenKubeconfig(process.env.KUBECONFIG!, work, 'secret-run-controller', token);
  controller = new ControllerProcess('secret-run-e2e', { leaseName: 'certrotator-controller', extraArgs: [`--kubeconfig=${controllerKc}`, `--lease-namespace=${RELEASE_NS}`] });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
}, 300_000);

afterAll(async () => {
  await run?.stop();
  await certManaged?.stop();
  await kubectl(['delete', 'validatingwebhookconfiguration', CM_VWC, '--ignore-not-found']);
  for (const r of ['run-ok', 'run-stuck', 'run-expired', 'run-apiservice', 'run-conversion', 'run-rancher']) await kubectl(['delete', 'certificaterotation', r, '--ignore-not-found', '--wait=true']);
  await controller?.stop();
  if (controller) expect(controller.stderr + JSON.stringify(controller.lines)).not.toMatch(/PRIVATE KEY/);
  await kubectl(['delete', 'validatingwebhookconfiguration', VWC, '--ignore-not-found']);
  // An APIService whose server is gone makes every discovery warn: it goes first.
  await kubectl(['delete', 'apiservice', APISERVICE, '--ignore-not-found']);
  await kubectl(['delete', 'namespace', NS, TARGET_NS, '--ignore-not-found', '--wait=false']);
  if (node) await kubectl(['label', 'node', node, `${NODE_LABEL}-`]);
  if (work) {
    await kubectl(['delete', '-f', join(work, 'rbac.yaml'), '--ignore-not-found']);
    rmSync(work, { recursive: true, force: true });
  }
  await kubectl(['delete', 'namespace', RELEASE_NS, '--ignore-not-found', '--wait=false']);
  claim?.release();
}, 180_000);

describe('scope: Secrets, mode: Apply, on the real control plane', () => {
  it("the chart's secretTargets.renew and .regenerate grants: the writes a run makes, and not the ones it does not", async () => {
    const can = async (...args: string[]) => (await kubectl(['auth', 'can-i', ...args], { kubeconfig: controllerKc })).code === 0;
    const allowed = [
      ['create', 'secrets', '-n', NS], ['update', 'secrets', '-n', NS], ['delete', 'secrets', '-n', NS],
      ['get', 'deployments.apps', '-n', NS], ['patch', 'deployments.apps', '-n', NS], ['patch', 'daemonsets.apps', '-n', NS], ['patch', 'statefulsets.apps', '-n', NS],
      ['patch', 'validatingwebhookconfigurations'], ['patch', 'mutatingwebhookconfigurations'], ['patch', 'apiservices'], ['patch', 'customresourcedefinitions'],
      ['get', 'services', '-n', NS], ['list', 'namespaces'], ['create', 'configmaps', '-n', TARGET_NS],
      ['delete', 'mutatingwebhookconfigurations/rancher.cattle.io'], ['update', 'mutatingwebhookconfigurations/rancher.cattle.io'], ['create', 'mutatingwebhookconfigurations'],
    ];
    const refused = [
      ['patch', 'secrets', '-n', NS], ['create', 'deployments.apps', '-n', NS], ['update', 'deployments.apps', '-n', NS], ['delete', 'deployments.apps', '-n', NS],
      ['delete', 'pods', '-n', NS], ['create', 'pods', '-n', NS], ['create', 'validatingwebhookconfigurations'], ['delete', 'validatingwebhookconfigurations'],
      ['delete', 'customresourcedefinitions'], ['delete', 'apiservices'], ['update', 'configmaps', '-n', TARGET_NS], ['delete', 'configmaps', '-n', TARGET_NS],
      ['patch', 'services', '-n', NS], ['delete', 'namespaces'], ['patch', 'nodes'],
      ['delete', 'mutatingwebhookconfigurations/other.example.com'], ['update', 'mutatingwebhookconfigurations/other.example.com'], ['update', 'validatingwebhookconfigurations/rancher.cattle.io'],
    ];
    // Asked all at once (each is one SelfSubjectAccessReview): one by one they took 36 s of a loaded run.
    const answers = await Promise.all([...allowed, ...refused].map(async (args) => ({ args, allowed: await can(...args) })));
    expect(answers).toEqual([...allowed.map((args) => ({ args, allowed: true })), ...refused.map((args) => ({ args, allowed: false }))]);
  });

  it("renews the webhook Secret in place: same CA, rolled, served by the new pod, called by the API server; backup gone; Ready; cert-manager's Secret untouched", async () => {
    const oldSerial = await run.servedSerial();
    const cmBefore = JSON.parse(await kubectlOk(['-n', NS, 'get', 'secret', 'cm-run-tls', '-o', 'json'])).metadata.resourceVersion;
    const cmServed = await certManaged.servedSerial();
    const podsBefore = run.started.length;
    await apply([rotation('run-ok', '90s')]);
    await kubectlOk(['wait', 'certificaterotation/run-ok', '--for=condition=Ready', '--timeout=180s']);
    const status = (await getRotation('run-ok')).status;
    expect(status.phase).toBe('Succeeded');
    expect(status.progress).toBe('1/1');
    const [t] = status.secretRun.targets;
    expect(t).toMatchObject({ secret: { namespace: NS, name: 'run-tls' }, workload: 'Deployment/run', fronts: [`ValidatingWebhookConfiguration/${VWC}`], phase: 'Rotated' });
    expect(normSerial(t.oldSerial)).toBe(oldSerial);
    const serial = normSerial(t.serial);
    expect(serial).not.toBe(oldSerial);
    expect(t.message).toMatch(new RegExp(`the API server called ValidatingWebhookConfiguration/${VWC.replace(/\./g, '\\.')}`));

    // The Secret: a certificate openssl verifies against the same CA, with the serial the status reports.
    const data = await run.secretData();
    expect(opensslVerify(ca.certPem, text(data['tls.crt']!))).toBe('OK');
    expect(await pemSerial(text(data['tls.crt']!))).toBe(serial);
    // The pods were replaced, and the new one serves it; the API server calls it through the unchanged caBundle.
    expect(run.started.length).toBeGreaterThan(podsBefore);
    expect(await run.servedSerial()).toBe(serial);
    const calls = run.server.calls;
    expect((await dryRunCreate()).code).toBe(0);
    expect(run.server.calls).toBeGreaterThan(calls);
    expect(await run.templateAnnotations()).toMatchObject({ 'certrotator.io/serving-serial': t.serial, 'certrotator.io/rotation': 'run-ok/g1' });
    expect(await backups()).toBe('');
    // kubectl get shows it, and no key material is in the status or the Events.
    expect(await kubectlOk(['get', 'certificaterotation', 'run-ok'])).toMatch(/run-ok\s+Secrets\s+.*Succeeded\s+1\/1/);
    const events = await kubectlOk(['get', 'events', '-A', '--field-selector', 'involvedObject.name=run-ok', '-o', 'json']);
    expect(JSON.stringify(status) + events).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
    expect(events).toMatch(/SecretRenewed/);
    // cert-manager's Secret: listed with its reason, not written, its pods not rolled, the same certificate served.
    expect(status.secretPlan.targets).toContainEqual(expect.objectContaining({ secret: { namespace: NS, name: 'cm-run-tls' }, action: 'LeaveAlone', reason: expect.stringContaining(`cert-manager Certificate ${NS}/cm-run`) }));
    expect(JSON.parse(await kubectlOk(['-n', NS, 'get', 'secret', 'cm-run-tls', '-o', 'json'])).metadata.resourceVersion).toBe(cmBefore);
    expect(await certManaged.templateAnnotations()).toEqual({});
    expect(await certManaged.servedSerial()).toBe(cmServed);
  });

  it('a rollout that cannot finish is rolled back: the old Secret and pod template, the old pods serve, Stalled names the target and the step', async () => {
    const dataBefore = await run.secretData();
    const templateBefore = await run.templateAnnotations();
    const servedBefore = await run.servedSerial();
    // New pods cannot be scheduled; the running one stays (maxUnavailable rounds down to 0 for one replica).
    await kubectlOk(['label', 'node', node, `${NODE_LABEL}-`]);
    try {
      await apply([rotation('run-stuck', '20s')]);
      await kubectlOk(['wait', 'certificaterotation/run-stuck', '--for=condition=Stalled', '--timeout=180s']);
      const status = (await getRotation('run-stuck')).status;
      const stalled = status.conditions.find((c: { type: string }) => c.type === 'Stalled');
      expect(stalled.reason).toBe('SecretTargetRolledBack');
      expect(stalled.message).toMatch(new RegExp(`Secret ${NS}/run-tls \\(Deployment/run\\) failed at step Rollout and was rolled back: Rollout failed: the rollout did not finish within nodeTimeout 20s`));
      expect(status.phase).toBe('Failed');
      expect(status.secretRun.targets[0]).toMatchObject({ phase: 'RolledBack', failedStep: 'Rollout' });
      // Everything as it was: the Secret byte for byte, the pod template, the old pod serving the old certificate.
      expect(await run.secretData()).toEqual(dataBefore);
      expect(await run.templateAnnotations()).toEqual(templateBefore);
      await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/run', '--timeout=60s']);
      expect(await run.servedSerial()).toBe(servedBefore);
      expect((await dryRunCreate()).code).toBe(0);
      // The backup stays with its rotation, and goes with it (the real garbage collector).
      expect(await backups()).toMatch(/secret\/run-tls-crbak-g1-/);
    } finally {
      await kubectlOk(['label', 'node', node, `${NODE_LABEL}=true`, '--overwrite']);
    }
    await kubectlOk(['delete', 'certificaterotation', 'run-stuck', '--wait=true', '--timeout=60s']);
    await waitFor('the backup garbage-collected with its rotation', async () => (await backups()) === '', 60_000);
  });

  it('an expired webhook certificate: the API server refuses to call it before, and calls the renewed one after', async () => {
    // Ten days of life, over ten days ago, from the same CA: what a cluster meets when nobody renewed it.
    const expired = issueServing(ca, { cn: `run.${NS}.svc`, dns: ['run', `run.${NS}`, `run.${NS}.svc`], days: 10, back: 20 });
    const patch = join(work, 'expired.patch.json');
    writeFileSync(patch, JSON.stringify({ data: { 'tls.crt': b64(expired.certPem), 'tls.key': b64(expired.keyPem) } }), { mode: 0o600 });
    try {
      await kubectlOk(['-n', NS, 'patch', 'secret', 'run-tls', '--type=merge', '--patch-file', patch]);
    } finally {
      rmSync(patch, { force: true });
    }
    // The pod restarted with it (a node reboot, say): the webhook now serves the expired certificate.
    await run.server.serve(expired, run.port);
    await waitFor('the API server refusing the expired certificate', async () => /failed calling webhook .*x509: certificate has expired/.test((await dryRunCreate()).stderr), 30_000);

    await apply([rotation('run-expired', '90s')]);
    await kubectlOk(['wait', 'certificaterotation/run-expired', '--for=condition=Ready', '--timeout=180s']);
    const [t] = (await getRotation('run-expired')).status.secretRun.targets;
    expect(t.phase).toBe('Rotated');
    const renewed = text((await run.secretData())['tls.crt']!);
    expect(opensslVerify(ca.certPem, renewed)).toBe('OK');
    // The old lifetime (ten days), counted from an hour ago.
    expect(Date.parse(t.notAfter) - Date.now()).toBeGreaterThan(9 * 86_400_000);
    expect(await run.servedSerial()).toBe(normSerial(t.serial));
    const r = await dryRunCreate();
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  });
});

describe('scope: Secrets, mode: Apply, an aggregated API (APIService)', () => {
  let metrics: ServedWorkload;
  let metricsCa: Pem;

  beforeAll(async () => {
    // Its CA found by convention (<name without -tls>-ca), its key beside it.
    metricsCa = makeCa({ cn: 'metrics-run-ca' });
    const pair = issueServing(metricsCa, { cn: `metrics-run.${NS}.svc`, dns: [`metrics-run.${NS}.svc`], days: 60, back: 5 });
    await apply([tlsSecret('metrics-run-ca', metricsCa), tlsSecret('metrics-run-tls', pair)]);
    metrics = new ServedWorkload('metrics-run', 'metrics-run-tls');
    await metrics.start(pair);
    await apply([
      {
        apiVersion: 'apiregistration.k8s.io/v1',
        kind: 'APIService',
        metadata: { name: APISERVICE },
        spec: { group: API_GROUP, version: 'v1beta1', groupPriorityMinimum: 100, versionPriority: 100, service: { namespace: NS, name: 'metrics-run', port: 443 }, caBundle: b64(metricsCa.certPem) },
      },
    ]);
    await kubectlOk(['wait', `apiservice/${APISERVICE}`, '--for=condition=Available', '--timeout=60s']);
  }, 180_000);

  afterAll(async () => {
    await kubectl(['delete', 'apiservice', APISERVICE, '--ignore-not-found']);
    await metrics?.stop();
  }, 60_000);

  it('renews its Secret in place, and the aggregator proxies GET /apis/<group>/<version> to the new pod through the caBundle', async () => {
    const oldSerial = await metrics.servedSerial();
    await apply([rotation('run-apiservice', '90s', { apiServices: [APISERVICE] })]);
    await kubectlOk(['wait', 'certificaterotation/run-apiservice', '--for=condition=Ready', '--timeout=180s']);
    const [t] = (await getRotation('run-apiservice')).status.secretRun.targets;
    expect(t).toMatchObject({ secret: { namespace: NS, name: 'metrics-run-tls' }, fronts: [`APIService/${APISERVICE}`], workload: 'Deployment/metrics-run', phase: 'Rotated', ca: { namespace: NS, name: 'metrics-run-ca' } });
    expect(t.message).toContain(`the API server called APIService/${APISERVICE} (GET /apis/${API_GROUP}/v1beta1 succeeded)`);
    const serial = normSerial(t.serial);
    expect(serial).not.toBe(oldSerial);
    expect(opensslVerify(metricsCa.certPem, text((await metrics.secretData())['tls.crt']!))).toBe('OK');
    expect(await metrics.servedSerial()).toBe(serial);
    // Through the aggregator, as any client reaches it.
    const calls = metrics.server.calls;
    expect(JSON.parse(await kubectlOk(['get', '--raw', `/apis/${API_GROUP}/v1beta1`]))).toMatchObject({ kind: 'APIResourceList', groupVersion: `${API_GROUP}/v1beta1` });
    expect(metrics.server.calls).toBeGreaterThan(calls);
  });
});

describe('scope: Secrets, mode: Apply, a CRD conversion webhook', () => {
  let convert: ServedWorkload;
  let convertCa: Pem;
  // Reading a stored v1 object as v2 is a conversion: the API server calls the webhook for it.
  const readAsV2 = () => kubectl(['get', `gadgets.v2.${CONV_GROUP}`, 'g1', '-n', NS, '-o', 'jsonpath={.apiVersion}']);

  beforeAll(async () => {
    convertCa = makeCa({ cn: 'convert-run-ca' });
    const pair = issueServing(convertCa, { cn: `convert-run.${NS}.svc`, dns: [`convert-run.${NS}.svc`], days: 45, back: 40 });
    await apply([tlsSecret('convert-run-ca', convertCa), tlsSecret('convert-run-tls', pair)]);
    convert = new ServedWorkload('convert-run', 'convert-run-tls');
    await convert.start(pair);
    const version = (name: string, storage: boolean) => ({ name, served: true, storage, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } });
    await apply([
      {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: CRD },
        spec: {
          group: CONV_GROUP,
          scope: 'Namespaced',
          names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
          versions: [version('v1', true), version('v2', false)],
          conversion: { strategy: 'Webhook', webhook: { conversionReviewVersions: ['v1'], clientConfig: { service: { namespace: NS, name: 'convert-run', path: '/convert', port: 443 }, caBundle: b64(convertCa.certPem) } } },
        },
      },
    ]);
    await kubectlOk(['wait', `crd/${CRD}`, '--for=condition=Established', '--timeout=60s']);
    await waitFor('gadget g1 created', async () => (await kubectl(['apply', '-f', '-'], { input: stringify({ apiVersion: `${CONV_GROUP}/v1`, kind: 'Gadget', metadata: { name: 'g1', namespace: NS } }) })).code === 0, 30_000);
    await waitFor('the API server converting through the webhook', async () => (await readAsV2()).stdout === `${CONV_GROUP}/v2`, 30_000);
  }, 180_000);

  afterAll(async () => {
    await kubectl(['delete', 'crd', CRD, '--ignore-not-found']);
    await convert?.stop();
  }, 60_000);

  it('renews its Secret in place; the served certificate is the evidence (no request is sent), and the API server converts through the new pod', async () => {
    const oldSerial = await convert.servedSerial();
    await apply([rotation('run-conversion', '90s', { conversionWebhooks: [CRD] })]);
    await kubectlOk(['wait', 'certificaterotation/run-conversion', '--for=condition=Ready', '--timeout=180s']);
    const [t] = (await getRotation('run-conversion')).status.secretRun.targets;
    expect(t).toMatchObject({ secret: { namespace: NS, name: 'convert-run-tls' }, fronts: [`CustomResourceDefinition/${CRD}`], workload: 'Deployment/convert-run', phase: 'Rotated' });
    expect(t.message).toContain(`not probed: CustomResourceDefinition/${CRD}: a conversion webhook has no harmless request; the served certificate was checked`);
    const serial = normSerial(t.serial);
    expect(serial).not.toBe(oldSerial);
    expect(await convert.servedSerial()).toBe(serial);
    const calls = convert.server.calls;
    const r = await readAsV2();
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `${CONV_GROUP}/v2` });
    expect(convert.server.calls).toBeGreaterThan(calls);
  });
});

describe('scope: Secrets, builtIn rancher-webhook (Regenerate), on the real control plane', () => {
  const RANCHER_NS = 'cattle-system';
  const RANCHER_TARGET_NS = 'crt-run-rancher-target';
  const MWC = 'rancher.cattle.io';
  const DNS = `rancher-webhook.${RANCHER_NS}.svc`;
  const DAY = 86_400_000;
  let oldCa: Pem;
  let rancher: ServedWorkload;
  let starts = 0;
  /** An owner that has lost the knack: it loads what the Secret holds and registers nothing. */
  let broken = false;

  const secretDataOf = async (name: string): Promise<Record<string, string> | undefined> => {
    const r = await kubectl(['-n', RANCHER_NS, 'get', 'secret', name, '-o', 'json']);
    if (r.code === 0) return JSON.parse(r.stdout).data;
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  };
  const mutating = (caBundle: string) =>
    configMapWebhook('MutatingWebhookConfiguration', MWC, 'rancher.cattle.io.configmaps.crt-e2e', { namespace: RANCHER_NS, name: 'rancher-webhook', path: '/v1/webhook/mutation' }, caBundle, 'certrotator-e2e/rancher');
  const dryRunRancher = () => kubectl(['create', 'configmap', `probe-${Date.now()}`, '-n', RANCHER_TARGET_NS, '--dry-run=server']);

  /**
   * A pod of rancher-webhook starting, as its dynamiclistener does (rancher/webhook
   * pkg/server/server.go, dynamiclistener storage/kubernetes and factory): the CA from
   * cattle-webhook-ca, made only when that Secret is absent; the pair from
   * cattle-webhook-tls, made (leaf followed by the CA) when it is absent or expires
   * within 90 days; then, as leader, the mutating configuration registered with the
   * CA as caBundle. The first pod has run since before its certificate expired, so
   * it serves what it loaded then and registers nothing.
   */
  async function rancherWebhookStarts(): Promise<Record<string, string>> {
    if (starts++ === 0 || broken) {
      // It loads what is there; a Secret just deleted is written back by the running pod within a moment.
      let loaded: Record<string, string> | undefined;
      await waitFor('cattle-webhook-tls to load', async () => (loaded = await secretDataOf('cattle-webhook-tls')) !== undefined, 30_000);
      return loaded!;
    }
    let caData = await secretDataOf('cattle-webhook-ca');
    if (!caData) {
      const fresh = makeCa({ cn: 'dynamiclistener-ca@crt-e2e' });
      caData = { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem) };
      await kubectlOk(['create', '-f', '-'], { input: stringify(tlsSecret('cattle-webhook-ca', caData, RANCHER_NS)) });
    }
    const caPair = { certPem: text(caData['tls.crt']!), keyPem: text(caData['tls.key']!) };
    let data = await secretDataOf('cattle-webhook-tls');
    if (!data || Date.parse(new X509Certificate(text(data['tls.crt']!)).validTo) - Date.now() < 90 * DAY) {
      const pair = issueServing(caPair, { cn: DNS, dns: [DNS], days: 3650 });
      data = { 'tls.crt': b64(pair.certPem + caPair.certPem), 'tls.key': b64(pair.keyPem) };
      await apply([tlsSecret('cattle-webhook-tls', data, RANCHER_NS)]);
    }
    await apply([mutating(b64(caPair.certPem))]);
    return data;
  }

  beforeAll(async () => {
    await kubectl(['delete', 'mutatingwebhookconfiguration', MWC, '--ignore-not-found']);
    for (const ns of [RANCHER_NS, RANCHER_TARGET_NS]) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    await kubectlOk(['create', 'namespace', RANCHER_NS]);
    await kubectlOk(['create', 'namespace', RANCHER_TARGET_NS]);
    await kubectlOk(['label', 'namespace', RANCHER_TARGET_NS, 'certrotator-e2e/rancher=true']);
    await kubectlOk(['label', 'node', node, `${NODE_LABEL}=true`, '--overwrite']);
    // Expired ten days ago; its CA Secret was lost since (the pod loaded the CA when it started).
    oldCa = makeCa({ cn: 'dynamiclistener-ca@crt-e2e' });
    const expired = issueServing(oldCa, { cn: DNS, dns: [DNS], days: 365, back: 375 });
    await apply([tlsSecret('cattle-webhook-tls', { 'tls.crt': b64(expired.certPem + oldCa.certPem), 'tls.key': b64(expired.keyPem) }, RANCHER_NS)]);
    rancher = new ServedWorkload('rancher-webhook', 'cattle-webhook-tls', RANCHER_NS, rancherWebhookStarts);
    await rancher.start(expired);
    await apply([mutating(b64(oldCa.certPem))]);
  }, 180_000);

  afterAll(async () => {
    for (const r of ['run-rancher', 'run-rancher-broken']) await kubectl(['delete', 'certificaterotation', r, '--ignore-not-found', '--wait=true']);
    await kubectl(['delete', 'mutatingwebhookconfiguration', MWC, '--ignore-not-found']);
    await rancher?.stop();
    await kubectl(['delete', 'namespace', RANCHER_NS, RANCHER_TARGET_NS, '--ignore-not-found', '--wait=false']);
  }, 60_000);

  it("follows Rancher's procedure safely: the API server's calls fail before; backed up, deleted, rolled; the owner makes a new CA and pair and registers again; verified, then the backups go", async () => {
    const before = await dryRunRancher();
    expect(before.code).not.toBe(0);
    expect(before.stderr).toMatch(/failed calling webhook "rancher\.cattle\.io\.configmaps\.crt-e2e"[\s\S]*(x509|certificate)/);
    const oldSerial = await rancher.servedSerial();
    const podsBefore = rancher.started.length;

    await apply([rotation('run-rancher', '90s', { builtIn: ['rancher-webhook'] })]);
    await kubectlOk(['wait', 'certificaterotation/run-rancher', '--for=condition=Ready', '--timeout=240s']);
    const status = (await getRotation('run-rancher')).status;
    expect(status.phase).toBe('Succeeded');
    const [t] = status.secretRun.targets;
    expect(t).toMatchObject({
      secret: { namespace: RANCHER_NS, name: 'cattle-webhook-tls' },
      workload: 'Deployment/rancher-webhook',
      action: 'Regenerate',
      removes: [`MutatingWebhookConfiguration/${MWC}`],
      ca: { namespace: RANCHER_NS, name: 'cattle-webhook-ca' },
      phase: 'Rotated',
    });
    expect(normSerial(t.oldSerial)).toBe(oldSerial);
    expect(t.message).toMatch(/the API server called MutatingWebhookConfiguration\/rancher\.cattle\.io/);

    // The owner made a new CA (its Secret was gone) and a pair it signed; openssl judges both.
    const newCa = text((await secretDataOf('cattle-webhook-ca'))!['tls.crt']!);
    expect(new X509Certificate(newCa).fingerprint256).not.toBe(new X509Certificate(oldCa.certPem).fingerprint256);
    const leafPem = text((await rancher.secretData())['tls.crt']!);
    expect(opensslVerify(newCa, leafPem)).toBe('OK');
    expect(normSerial(t.serial)).toBe(await pemSerial(leafPem));
    // New pods serve it; the re-registered configuration trusts the new CA; the API server calls it now.
    expect(rancher.started.length).toBeGreaterThan(podsBefore);
    expect(await rancher.servedSerial()).toBe(normSerial(t.serial));
    const mwc = JSON.parse(await kubectlOk(['get', 'mutatingwebhookconfiguration', MWC, '-o', 'json']));
    expect(text(mwc.webhooks[0].clientConfig.caBundle)).toBe(newCa);
    const calls = rancher.server.calls;
    expect((await dryRunRancher()).code).toBe(0);
    expect(rancher.server.calls).toBeGreaterThan(calls);
    // The backup (the Secret, with the configuration it deleted; the CA Secret was absent) is gone; no key in status or Events.
    expect((await kubectlOk(['-n', RANCHER_NS, 'get', 'secrets', '-l', 'certrotator.io/backup-of', '-o', 'name'])).trim()).toBe('');
    const events = await kubectlOk(['get', 'events', '-A', '--field-selector', 'involvedObject.name=run-rancher', '-o', 'json']);
    expect(events).toMatch(/regenerated by its owner/);
    expect(JSON.stringify(status) + events).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
  });

  it('an owner that never makes a new pair nor registers again: Reissued fails at nodeTimeout; the Secret is restored and the deleted configuration created again from the backup, so the API server calls the old pods again', async () => {
    // Due within 90 days, signed by the owner's CA; the owner "restarts" with it and from now on re-issues nothing.
    const caData = (await secretDataOf('cattle-webhook-ca'))!;
    const caPair = { certPem: text(caData['tls.crt']!), keyPem: text(caData['tls.key']!) };
    const due = issueServing(caPair, { cn: DNS, dns: [DNS], days: 60, back: 30 });
    const dueData = { 'tls.crt': b64(due.certPem + caPair.certPem), 'tls.key': b64(due.keyPem) };
    await apply([tlsSecret('cattle-webhook-tls', dueData, RANCHER_NS)]);
    broken = true;
    const podsBefore = rancher.started.length;
    await kubectlOk(['-n', RANCHER_NS, 'rollout', 'restart', 'deployment/rancher-webhook']);
    await kubectlOk(['-n', RANCHER_NS, 'rollout', 'status', 'deployment/rancher-webhook', '--timeout=60s']);
    await waitFor('the restarted pod serving the due pair', async () => rancher.started.length > podsBefore && (await rancher.servedSerial()) === (await pemSerial(due.certPem)), 30_000);
    const mwcBefore = JSON.parse(await kubectlOk(['get', 'mutatingwebhookconfiguration', MWC, '-o', 'json']));
    const templateBefore = await rancher.templateAnnotations();
    expect((await dryRunRancher()).code).toBe(0);

    await apply([rotation('run-rancher-broken', '15s', { builtIn: ['rancher-webhook'] })]);
    await kubectlOk(['wait', 'certificaterotation/run-rancher-broken', '--for=condition=Stalled', '--timeout=240s']);
    const status = (await getRotation('run-rancher-broken')).status;
    const stalled = status.conditions.find((c: { type: string }) => c.type === 'Stalled');
    expect(stalled.reason).toBe('SecretTargetRolledBack');
    expect(stalled.message).toMatch(/Secret cattle-system\/cattle-webhook-tls \(Deployment\/rancher-webhook\) failed at step Reissued and was rolled back: Reissued failed: not regenerated within nodeTimeout 15s: /);
    expect(stalled.message).toMatch(/MutatingWebhookConfiguration\/rancher\.cattle\.io restored from the backup; pod template put back/);
    // Put back through the real API server: the Secret byte for byte, the configuration created again as it was, the pod template.
    expect(await rancher.secretData()).toEqual(dueData);
    const mwc = JSON.parse(await kubectlOk(['get', 'mutatingwebhookconfiguration', MWC, '-o', 'json']));
    expect(mwc.metadata.uid).not.toBe(mwcBefore.metadata.uid);
    expect(mwc.webhooks).toEqual(mwcBefore.webhooks);
    expect(await rancher.templateAnnotations()).toEqual(templateBefore);
    await waitFor('the API server calling the restored webhook', async () => (await dryRunRancher()).code === 0, 30_000);
    // The backups stay with the rotation, for a person to look at.
    expect((await kubectlOk(['-n', RANCHER_NS, 'get', 'secrets', '-l', 'certrotator.io/backup-of', '-o', 'name'])).trim().split('\n')).toHaveLength(2);
  });
});
