// Which CA signed what a Secret holds, and how the caBundles of a target's
// fronts change, on certificates made by openssl (test/secrets/webhook-pki.ts).
import { describe, expect, test } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import type { SecretRunTarget } from '../../api/secret-targets.js';
import { b64, issueServing, makeCa, type Pem } from '../../../test/secrets/webhook-pki.js';
import type { SecretObject } from './backup.js';
import { decode } from './discovery.js';
import { FakeSecretRunCluster } from './fake-run-cluster.js';
import { dropSupersededCa, issuerIn } from './front-bundles.js';

const ca = makeCa({ cn: 'hooks-ca' });
const sameName = makeCa({ cn: 'hooks-ca' }); // another key under the same name: never the issuer
const newCa = makeCa({ cn: 'hooks-ca' });
const leaf = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'] });
const newLeaf = issueServing(newCa, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'] });

const secret = (data: Record<string, string>): SecretObject => ({ metadata: { namespace: 'hooks', name: 'hook-tls' }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) });
const fingerprint = (p: Pem | X509Certificate | undefined) => (p === undefined ? undefined : p instanceof X509Certificate ? p.fingerprint256 : new X509Certificate(p.certPem).fingerprint256);

describe('issuerIn', () => {
  test.each([
    { name: "the CA Secret's certificate", serving: { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem }, caSecret: { 'tls.crt': ca.certPem }, want: ca },
    { name: 'the chain after the leaf (rancher-webhook writes leaf + CA), the CA Secret gone', serving: { 'tls.crt': leaf.certPem + ca.certPem, 'tls.key': leaf.keyPem }, caSecret: undefined, want: ca },
    { name: "the Secret's own ca.crt", serving: { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem, 'ca.crt': ca.certPem }, caSecret: undefined, want: ca },
    { name: 'a CA of the same name that did not sign it, in the CA Secret, then the signer in the chain', serving: { 'tls.crt': leaf.certPem + ca.certPem, 'tls.key': leaf.keyPem }, caSecret: { 'tls.crt': sameName.certPem }, want: ca },
    { name: 'only a CA of the same name: none', serving: { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem }, caSecret: { 'tls.crt': sameName.certPem }, want: undefined },
    { name: 'no serving pair: none', serving: { 'tls.crt': leaf.certPem }, caSecret: { 'tls.crt': ca.certPem }, want: undefined },
  ] as { name: string; serving: Record<string, string>; caSecret?: Record<string, string>; want: Pem | undefined }[])('$name', ({ serving, caSecret, want }) => {
    expect(fingerprint(issuerIn(secret(serving), caSecret ? secret(caSecret) : undefined, 'tls.crt'))).toBe(fingerprint(want));
  });
});

describe('dropSupersededCa', () => {
  const target: SecretRunTarget = {
    secret: { namespace: 'hooks', name: 'hook-tls' },
    workload: 'Deployment/hook',
    fronts: ['ValidatingWebhookConfiguration/hook', 'ValidatingWebhookConfiguration/other'],
    services: [{ namespace: 'hooks', name: 'hook' }],
    ca: { namespace: 'hooks', name: 'hook-ca', certKey: 'tls.crt', keyKey: 'tls.key' },
    phase: 'Renewing',
  };
  const bundle = (c: FakeSecretRunCluster, front: string) => decode(c.fronts.get(front)!.webhooks![0]!.clientConfig!.caBundle);

  test('a bundle holding the old and the new CA keeps the new one; a bundle of the new one only is not written', async () => {
    const c = new FakeSecretRunCluster();
    c.putValidatingWebhook('hook', { namespace: 'hooks', name: 'hook' }, b64(ca.certPem + newCa.certPem));
    c.putValidatingWebhook('other', { namespace: 'hooks', name: 'hook' }, b64(newCa.certPem));
    const trimmed = await dropSupersededCa(c, target, new X509Certificate(leaf.certPem), new X509Certificate(newLeaf.certPem));
    expect(trimmed).toEqual(['ValidatingWebhookConfiguration/hook']);
    expect(bundle(c, 'ValidatingWebhookConfiguration/hook')).toBe(newCa.certPem);
    expect(c.writes).toEqual(['patch ValidatingWebhookConfiguration/hook']);
  });

  test('the same CA before and after: nothing is dropped', async () => {
    const c = new FakeSecretRunCluster();
    c.putValidatingWebhook('hook', { namespace: 'hooks', name: 'hook' }, b64(ca.certPem + sameName.certPem));
    const again = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'] });
    expect(await dropSupersededCa(c, target, new X509Certificate(leaf.certPem), new X509Certificate(again.certPem))).toEqual([]);
    expect(c.writes).toEqual([]);
  });
});
