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
const RELEASE = 'secret-run-e2e';
const RELEASE_NS = 'crt-secret-run-e2e';
const SA = `${RELEASE}-certrotator-controller`;
const NODE_LABEL = 'certrotator-e2e/secret-run';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string) => Buffer.from(s, 'base64').toString('utf8');

let work: string;
let claim: ReturnType<typeof claimWebhookAddress>;
let server: WebhookServer;
let port: number;
let ca: Pem;
let original: Pem;
let controller: ControllerProcess;
let node: string;
let watching = true;
let podWatch: Promise<void>;
const started: string[] = []; // pod names in the order "their" server started

const secretData = async (): Promise<Record<string, string>> => JSON.parse(await kubectlOk(['-n', NS, 'get', 'secret', 'run-tls', '-o', 'json'])).data;
const templateAnnotations = async (): Promise<Record<string, string>> => JSON.parse(await kubectlOk(['-n', NS, 'get', 'deployment', 'run', '-o', 'json'])).spec.template.metadata.annotations ?? {};
const dryRunCreate = () => kubectl(['create', 'configmap', `probe-${Date.now()}`, '-n', TARGET_NS, '--dry-run=server']);
const servedSerial = async () => pemSerial(await servedPem(claim.address, port));
const backups = async () => (await kubectlOk(['-n', NS, 'get', 'secrets', '-l', 'certrotator.io/backup-of', '-o', 'name'])).trim();

/** A pod of the Deployment that is running and not being deleted: what the endpoint's "container" is. */
async function runningPod(): Promise<string | undefined> {
  const pods = JSON.parse(await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app=run', '-o', 'json'])).items as { metadata: { name: string; deletionTimestamp?: string; creationTimestamp: string }; status?: { phase?: string } }[];
  const live = pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running').sort((a, b) => (a.metadata.creationTimestamp < b.metadata.creationTimestamp ? 1 : -1));
  return live[0]?.metadata.name;
}

/**
 * What the kubelet and the EndpointSlice controller would do for a real pod:
 * when the newest running pod changes, the server restarts with what the
 * Secret holds now and the EndpointSlice names the new pod.
 */
async function followPods(): Promise<void> {
  let current: string | undefined;
  while (watching) {
    const pod = await runningPod().catch(() => undefined);
    if (pod && pod !== current) {
      const data = await secretData();
      await server.serve({ certPem: text(data['tls.crt']!), keyPem: text(data['tls.key']!) }, port);
      await apply([endpointSlice(pod)]);
      current = pod;
      started.push(pod);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

function endpointSlice(pod: string) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'run-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'run', 'endpointslice.kubernetes.io/managed-by': 'certrotator-e2e' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [claim.address], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: NS, name: pod } }],
    ports: [{ name: 'https', port, protocol: 'TCP' }],
  };
}

const apply = (objects: object[]) => kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });

function rotation(name: string, nodeTimeout: string) {
  return { apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', metadata: { name }, spec: { scope: 'Secrets', mode: 'Apply', secrets: { namespaces: [NS] }, strategy: { nodeTimeout } } };
}

beforeAll(async () => {
  await installCrds();
  for (const r of ['run-ok', 'run-stuck']) await kubectl(['delete', 'certificaterotation', r, '--ignore-not-found', '--wait=true']);
  await kubectl(['delete', 'validatingwebhookconfiguration', VWC, '--ignore-not-found']);
  for (const ns of [NS, TARGET_NS]) await kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true', '--timeout=60s']);
  work = mkdtempSync(join(tmpdir(), 'secret-run-e2e-'));

  // Made by openssl: the CA (its key in the cluster, so the Secret is renewable in place) and a pair 20 days into its 30.
  ca = makeCa({ cn: 'run-ca' });
  original = issueServing(ca, { cn: `run.${NS}.svc`, dns: ['run', `run.${NS}`, `run.${NS}.svc`], days: 30, back: 20 });
  claim = claimWebhookAddress();
  server = new WebhookServer(claim.address);
  port = await server.serve(original);

  // One node carries the label the Deployment's pods need: taking it away later makes new pods unschedulable.
  node = (await kubectlOk(['get', 'nodes', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  await kubectlOk(['label', 'node', node, `${NODE_LABEL}=true`, '--overwrite']);
  await kubectlOk(['create', 'namespace', NS]);
  await kubectlOk(['create', 'namespace', TARGET_NS]);
  await kubectlOk(['label', 'namespace', TARGET_NS, 'certrotator-e2e/run=true']);
  const tls = (name: string, pair: Pem) => ({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: NS }, data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem) } });
  await apply([
    tls('run-ca', ca),
    tls('run-tls', original),
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'run', namespace: NS },
      spec: {
        replicas: 1,
        // Fails fast when new pods cannot start (the stuck test), as kubectl rollout status would report.
        progressDeadlineSeconds: 600,
        selector: { matchLabels: { app: 'run' } },
        template: {
          metadata: { labels: { app: 'run' } },
          spec: {
            automountServiceAccountToken: false,
            nodeSelector: { [NODE_LABEL]: 'true' },
            containers: [{ name: 'server', image: 'example.invalid/webhook:1', volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }] }],
            volumes: [{ name: 'tls', secret: { secretName: 'run-tls' } }],
          },
        },
      },
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'run', namespace: NS }, spec: { ports: [{ name: 'https', port: 443, targetPort: port }] } },
  ]);
  await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/run', '--timeout=60s']);
  podWatch = followPods();
  await waitFor('the pod followed by the webhook server', () => started.length > 0, 30_000);
  await apply([
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: VWC },
      webhooks: [
        {
          name: VWC,
          clientConfig: { service: { namespace: NS, name: 'run', path: '/validate', port: 443 }, caBundle: b64(ca.certPem) },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
          namespaceSelector: { matchLabels: { 'certrotator-e2e/run': 'true' } },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          timeoutSeconds: 5,
        },
      ],
    },
  ]);
  const before = server.calls;
  await waitFor('the API server calling the webhook', async () => (await dryRunCreate()).code === 0 && server.calls > before, 30_000);

  // The chart's controller ServiceAccount and RBAC, with secretTargets enabled and renew on, under a release of its own.
  const helm = join(process.env.CERTROTATOR_BIN_DIR ?? '', 'helm');
  const rendered = execFileSync(helm, ['template', RELEASE, CHART, '--namespace', RELEASE_NS, '--set', 'secretTargets.enabled=true', '--set', 'secretTargets.renew=true', '--show-only', 'templates/serviceaccounts.yaml', '--show-only', 'templates/controller-rbac.yaml'], { encoding: 'utf8' });
  const ns = await kubectl(['create', 'namespace', RELEASE_NS]);
  if (ns.code !== 0 && !/AlreadyExists/.test(ns.stderr)) throw new Error(ns.stderr);
  writeFileSync(join(work, 'rbac.yaml'), rendered);
  await kubectlOk(['apply', '-f', join(work, 'rbac.yaml')]);
  const token = (await kubectlOk(['create', 'token', SA, '-n', RELEASE_NS, '--duration=1h'])).trim();
  const kc = tokenKubeconfig(process.env.KUBECONFIG!, work, 'secret-run-controller', token);
  controller = new ControllerProcess('secret-run-e2e', { leaseName: 'certrotator-controller', extraArgs: [`--kubeconfig=${kc}`, `--lease-namespace=${RELEASE_NS}`] });
  await waitFor('controller leading', () => controller.leading(), CONTROLLER_START_MS, () => controller.debug());
}, 300_000);

afterAll(async () => {
  watching = false;
  await podWatch;
  for (const r of ['run-ok', 'run-stuck']) await kubectl(['delete', 'certificaterotation', r, '--ignore-not-found', '--wait=true']);
  await controller?.stop();
  if (controller) expect(controller.stderr + JSON.stringify(controller.lines)).not.toMatch(/PRIVATE KEY/);
  await kubectl(['delete', 'validatingwebhookconfiguration', VWC, '--ignore-not-found']);
  await kubectl(['delete', 'namespace', NS, TARGET_NS, '--ignore-not-found', '--wait=false']);
  if (node) await kubectl(['label', 'node', node, `${NODE_LABEL}-`]);
  if (work) {
    await kubectl(['delete', '-f', join(work, 'rbac.yaml'), '--ignore-not-found']);
    rmSync(work, { recursive: true, force: true });
  }
  await kubectl(['delete', 'namespace', RELEASE_NS, '--ignore-not-found', '--wait=false']);
  await server?.stop();
  claim?.release();
}, 180_000);

describe('scope: Secrets, mode: Apply, on the real control plane', () => {
  it('renews the webhook Secret in place: same CA, rolled, served by the new pod, called by the API server; backup gone; Ready', async () => {
    const oldSerial = normSerial(await servedSerial());
    const podsBefore = started.length;
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
    const data = await secretData();
    expect(opensslVerify(ca.certPem, text(data['tls.crt']!))).toBe('OK');
    expect(await pemSerial(text(data['tls.crt']!))).toBe(serial);
    // The pods were replaced, and the new one serves it; the API server calls it through the unchanged caBundle.
    expect(started.length).toBeGreaterThan(podsBefore);
    expect(normSerial(await servedSerial())).toBe(serial);
    const calls = server.calls;
    expect((await dryRunCreate()).code).toBe(0);
    expect(server.calls).toBeGreaterThan(calls);
    expect((await templateAnnotations())['certrotator.io/serving-serial']).toBe(t.serial);
    expect(await backups()).toBe('');
    // kubectl get shows it, and no key material is in the status or the Events.
    expect(await kubectlOk(['get', 'certificaterotation', 'run-ok'])).toMatch(/run-ok\s+Secrets\s+.*Succeeded\s+1\/1/);
    const events = await kubectlOk(['get', 'events', '-A', '--field-selector', 'involvedObject.name=run-ok', '-o', 'json']);
    expect(JSON.stringify(status) + events).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
    expect(events).toMatch(/SecretRenewed/);
  });

  it('a rollout that cannot finish is rolled back: the old Secret and pod template, the old pods serve, Stalled names the target and the step', async () => {
    const dataBefore = await secretData();
    const templateBefore = await templateAnnotations();
    const servedBefore = normSerial(await servedSerial());
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
      expect(await secretData()).toEqual(dataBefore);
      expect(await templateAnnotations()).toEqual(templateBefore);
      await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/run', '--timeout=60s']);
      expect(normSerial(await servedSerial())).toBe(servedBefore);
      expect((await dryRunCreate()).code).toBe(0);
      // The backup stays with its rotation, and goes with it (the real garbage collector).
      expect(await backups()).toMatch(/secret\/run-tls-crbak-g1-/);
    } finally {
      await kubectlOk(['label', 'node', node, `${NODE_LABEL}=true`, '--overwrite']);
    }
    await kubectlOk(['delete', 'certificaterotation', 'run-stuck', '--wait=true', '--timeout=60s']);
    await waitFor('the backup garbage-collected with its rotation', async () => (await backups()) === '', 60_000);
  });
});
