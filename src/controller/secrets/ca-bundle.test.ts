import { describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { b64, makeCa } from '../../../test/secrets/webhook-pki.js';
import { dropCaPatch, trustCaPatch, type JsonPatchOp, type LiveFront } from './ca-bundle.js';

const SVC = { namespace: 'hooks', name: 'hook' };
const OTHER = { namespace: 'hooks', name: 'other' };
const oldCa = makeCa({ cn: 'hook-ca' });
const newCa = makeCa({ cn: 'hook-ca' }); // same name, another key: only the certificate tells them apart
const thirdCa = makeCa({ cn: 'another-ca' });

const vwc = (...webhooks: [typeof SVC, string | undefined][]): LiveFront => ({
  kind: 'ValidatingWebhookConfiguration',
  webhooks: webhooks.map(([service, caBundle]) => ({ clientConfig: { service, ...(caBundle !== undefined ? { caBundle } : {}) } })),
});
const decoded = (ops: JsonPatchOp[], k: number): X509Certificate[] =>
  [...Buffer.from((ops[k] as { value: string }).value, 'base64').toString('utf8').matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
const fingerprints = (certs: X509Certificate[]): string[] => certs.map((c) => c.fingerprint256);
const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;

describe('trustCaPatch', () => {
  test('adds the new CA after the old one, guarded by a test of the bundle as read; only the webhook that calls the Service', () => {
    const bundle = b64(oldCa.certPem);
    const front = vwc([OTHER, b64(thirdCa.certPem)], [SVC, bundle]);
    const ops = trustCaPatch(front, SVC, newCa.certPem);
    expect(ops.map((o) => [o.op, o.path])).toEqual([
      ['test', '/webhooks/1/clientConfig/caBundle'],
      ['replace', '/webhooks/1/clientConfig/caBundle'],
    ]);
    expect((ops[0] as { value: string }).value).toBe(bundle);
    expect(fingerprints(decoded(ops, 1))).toEqual([fp(oldCa.certPem), fp(newCa.certPem)]);
  });

  test('nothing to do when the bundle already holds the CA (a CA of the same name does not count)', () => {
    expect(trustCaPatch(vwc([SVC, b64(thirdCa.certPem + newCa.certPem)]), SVC, newCa.certPem)).toEqual([]);
    expect(trustCaPatch(vwc([SVC, b64(oldCa.certPem)]), SVC, newCa.certPem)).toHaveLength(2);
  });

  test('an absent caBundle is added, not tested', () => {
    const ops = trustCaPatch(vwc([SVC, undefined]), SVC, newCa.certPem);
    expect(ops.map((o) => [o.op, o.path])).toEqual([['add', '/webhooks/0/clientConfig/caBundle']]);
    expect(fingerprints(decoded(ops, 0))).toEqual([fp(newCa.certPem)]);
  });

  test('each kind by its own field: APIService spec.caBundle, a CRD conversion webhook; a CRD without a webhook has none', () => {
    const api: LiveFront = { kind: 'APIService', spec: { service: SVC, caBundle: b64(oldCa.certPem) } };
    expect(trustCaPatch(api, SVC, newCa.certPem).map((o) => o.path)).toEqual(['/spec/caBundle', '/spec/caBundle']);
    const crd: LiveFront = { kind: 'CustomResourceDefinition', spec: { conversion: { strategy: 'Webhook', webhook: { clientConfig: { service: SVC, caBundle: b64(oldCa.certPem) } } } } };
    expect(trustCaPatch(crd, SVC, newCa.certPem).map((o) => o.path)).toEqual(['/spec/conversion/webhook/clientConfig/caBundle', '/spec/conversion/webhook/clientConfig/caBundle']);
    expect(trustCaPatch({ kind: 'CustomResourceDefinition', spec: { conversion: { strategy: 'None' } } }, SVC, newCa.certPem)).toEqual([]);
  });
});

describe('dropCaPatch', () => {
  test('drops the old CA and keeps the rest in order', () => {
    const front = vwc([SVC, b64(thirdCa.certPem + oldCa.certPem + newCa.certPem)]);
    const ops = dropCaPatch(front, SVC, oldCa.certPem);
    expect(ops.map((o) => o.op)).toEqual(['test', 'replace']);
    expect(fingerprints(decoded(ops, 1))).toEqual([fp(thirdCa.certPem), fp(newCa.certPem)]);
  });

  test('never leaves a bundle empty (the API server would fall back to its own trust store), and leaves one without the CA alone', () => {
    expect(dropCaPatch(vwc([SVC, b64(oldCa.certPem)]), SVC, oldCa.certPem)).toEqual([]);
    expect(dropCaPatch(vwc([SVC, b64(newCa.certPem)]), SVC, oldCa.certPem)).toEqual([]);
    expect(dropCaPatch(vwc([OTHER, b64(oldCa.certPem + newCa.certPem)]), SVC, oldCa.certPem)).toEqual([]);
  });
});
