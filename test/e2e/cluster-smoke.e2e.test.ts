// Proves the test control plane is a real Kubernetes: admission, scheduling,
// controllers, the CSR signer and the RBAC authorizer all behave as in a cluster.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';
import type { SimulatedNode } from '../cluster/nodes.js';

const NS = 'smoke';
const nodes = JSON.parse(process.env.CERTROTATOR_E2E_NODES ?? '[]') as SimulatedNode[];

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface PodList {
  items: { metadata: { uid: string; name: string; deletionTimestamp?: string }; spec: { nodeName?: string }; status: { phase?: string } }[];
}

async function webPods(): Promise<PodList['items']> {
  const out = await kubectlOk(['-n', NS, 'get', 'pods', '-l', 'app=web', '-o', 'json']);
  return (JSON.parse(out) as PodList).items;
}

describe('the test control plane', () => {
  beforeAll(async () => {
    await kubectlOk(['create', 'namespace', NS]);
    await waitFor('the default ServiceAccount in the smoke namespace', async () =>
      (await kubectl(['-n', NS, 'get', 'serviceaccount', 'default'])).code === 0 ? true : undefined,
    );
  });
  afterAll(async () => {
    await kubectl(['delete', 'namespace', NS, '--wait=false']);
    await kubectl(['delete', 'crd', 'widgets.smoke.certrotator.test', '--wait=false']);
  });

  it('has the simulated nodes Ready, untainted, with their RKE2 marks and IPs', async () => {
    expect(nodes).toHaveLength(6);
    const out = JSON.parse(await kubectlOk(['get', 'nodes', '-o', 'json'])) as {
      items: { metadata: { name: string; labels: Record<string, string> }; spec: { taints?: unknown[] }; status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[]; nodeInfo: { kubeletVersion: string } } }[];
    };
    for (const want of nodes) {
      const node = out.items.find((n) => n.metadata.name === want.name);
      expect(node).toBeDefined();
      expect(node!.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(node!.spec.taints ?? []).toHaveLength(0);
      expect(node!.status.addresses).toContainEqual({ type: 'InternalIP', address: want.ip });
      expect(node!.status.nodeInfo.kubeletVersion).toMatch(/^v1\.\d+\.\d+\+rke2r1$/);
      const isServer = want.roles.includes('controlplane');
      expect(node!.metadata.labels['node-role.kubernetes.io/control-plane']).toBe(isServer ? 'true' : undefined);
    }
  });

  it('rejects an object that breaks a CRD schema, with the schema message', async () => {
    const crd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.smoke.certrotator.test }
spec:
  group: smoke.certrotator.test
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: { type: integer, minimum: 1 }
`;
    await kubectlOk(['apply', '-f', '-'], { input: crd });
    await kubectlOk(['wait', '--for=condition=Established', 'crd/widgets.smoke.certrotator.test', '--timeout=60s']);
    const bad = await kubectl(['-n', NS, 'apply', '-f', '-'], {
      input: 'apiVersion: smoke.certrotator.test/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 0}\n',
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.size: Invalid value: 0: spec\.size in body should be greater than or equal to 1/);
    const good = await kubectl(['-n', NS, 'apply', '-f', '-'], {
      input: 'apiVersion: smoke.certrotator.test/v1\nkind: Widget\nmetadata: {name: good}\nspec: {size: 2}\n',
    });
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
  });

  it('schedules a Deployment onto the simulated nodes, runs it, and replaces its pods on a template change', async () => {
    await kubectlOk(['-n', NS, 'create', 'deployment', 'web', '--image=registry.invalid/web:1', '--replicas=3']);
    await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/web', '--timeout=120s']);
    const first = await webPods();
    expect(first).toHaveLength(3);
    const nodeNames = new Set(nodes.map((n) => n.name));
    for (const pod of first) {
      expect(pod.status.phase).toBe('Running');
      expect(nodeNames.has(pod.spec.nodeName ?? '')).toBe(true);
    }

    await kubectlOk(['-n', NS, 'patch', 'deployment', 'web', '-p', '{"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}}']);
    await kubectlOk(['-n', NS, 'rollout', 'status', 'deployment/web', '--timeout=120s']);
    const oldUids = new Set(first.map((p) => p.metadata.uid));
    const second = await waitFor('old pods to be gone', async () => {
      const pods = await webPods();
      return pods.length === 3 && pods.every((p) => !oldUids.has(p.metadata.uid)) ? pods : undefined;
    });
    for (const pod of second) expect(pod.status.phase).toBe('Running');
  });

  it('signs an approved CertificateSigningRequest with the cluster CA', async () => {
    const work = mkdtempSync(join(tmpdir(), 'smoke-csr-'));
    try {
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(work, 'k.pem'), '-out', join(work, 'r.csr'), '-subj', '/CN=smoke-client/O=smoke'], { stdio: 'ignore' });
      const request = execFileSync('base64', ['-w0', join(work, 'r.csr')]).toString();
      await kubectlOk(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'certificates.k8s.io/v1',
          kind: 'CertificateSigningRequest',
          metadata: { name: 'smoke-client' },
          spec: { request, signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], expirationSeconds: 3600 },
        }),
      });
      await kubectlOk(['certificate', 'approve', 'smoke-client']);
      const pem = await waitFor('the CSR to be signed', async () => {
        const b64 = await kubectlOk(['get', 'csr', 'smoke-client', '-o', 'jsonpath={.status.certificate}']);
        return b64 ? Buffer.from(b64, 'base64').toString() : undefined;
      });
      writeFileSync(join(work, 'signed.crt'), pem);
      const caFile = join(process.env.CERTROTATOR_E2E_CLUSTER_DIR!, 'pki', 'ca.crt');
      const verify = execFileSync('openssl', ['verify', '-CAfile', caFile, join(work, 'signed.crt')]).toString();
      expect(verify.trim()).toBe(`${join(work, 'signed.crt')}: OK`);
      const subject = execFileSync('openssl', ['x509', '-noout', '-subject', '-in', join(work, 'signed.crt')]).toString();
      expect(subject).toMatch(/CN\s*=\s*smoke-client/);
    } finally {
      rmSync(work, { recursive: true, force: true });
      await kubectl(['delete', 'csr', 'smoke-client']);
    }
  });

  it('denies a ServiceAccount what its Role does not grant (RBAC authorizer, real token)', async () => {
    await kubectlOk(['-n', NS, 'create', 'serviceaccount', 'reader']);
    await kubectlOk(['-n', NS, 'create', 'role', 'pod-reader', '--verb=get,list', '--resource=pods']);
    await kubectlOk(['-n', NS, 'create', 'rolebinding', 'reader', '--role=pod-reader', `--serviceaccount=${NS}:reader`]);
    const token = (await kubectlOk(['-n', NS, 'create', 'token', 'reader', '--duration=10m'])).trim();
    // A kubeconfig with only the token: the admin client certificate must not be
    // what authenticates these requests.
    const admin = JSON.parse(await kubectlOk(['config', 'view', '--raw', '-o', 'json'])) as {
      clusters: { cluster: { server: string; 'certificate-authority': string } }[];
    };
    const cluster = admin.clusters[0]!.cluster;
    const dir = mkdtempSync(join(tmpdir(), 'smoke-sa-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority': cluster['certificate-authority'] } }],
        users: [{ name: 'reader', user: { token } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'reader' } }],
        'current-context': 'c',
      }),
      { mode: 0o600 },
    );
    const asReader = (args: string[]): Promise<{ code: number; stderr: string }> => kubectl(args, { kubeconfig });
    const allowed = await waitFor('the RoleBinding to take effect', async () => {
      const r = await asReader(['-n', NS, 'get', 'pods']);
      return r.code === 0 ? r : undefined;
    });
    expect(allowed.code).toBe(0);
    const denied = await asReader(['-n', NS, 'get', 'secrets']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(
      new RegExp(`User "system:serviceaccount:${NS}:reader" cannot list resource "secrets" in API group "" in the namespace "${NS}"`),
    );
    const otherNs = await asReader(['-n', 'default', 'get', 'pods']);
    expect(otherNs.stderr).toMatch(/cannot list resource "pods"/);
    rmSync(dir, { recursive: true, force: true });
  });
});
