// The renewed pair is judged by openssl, not by the engine that made it: the
// chain verifies against the CA the fixtures made with `openssl ca`, and the
// subject, SANs, usages and key type read back from `openssl x509 -text`.
import { describe, expect, test } from '@jest/globals';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { b64, issueServing, makeCa, opensslVerify, opensslWith, type Pem } from '../../../test/secrets/webhook-pki.js';
import type { SecretInfo } from './discovery.js';
import { renewServingSecret, type CaSource } from './renew-in-place.js';

const DAY = 86_400_000;
const NOW = new Date();

const secret = (name: string, data: Record<string, string>): SecretInfo => ({ namespace: 'hooks', name, labels: {}, annotations: {}, data });
const text = (b: string | undefined): string => Buffer.from(b ?? '', 'base64').toString('utf8');


// What a client checks of a serving certificate, as openssl prints it.
function identity(certPem: string): { subject: string; san: string; eku: string; keyUsage: string; key: string } {
  const out = opensslWith(['x509', '-noout', '-text', '-nameopt', 'RFC2253'], certPem);
  const lines = out.split('\n');
  const after = (heading: string): string => {
    const i = lines.findIndex((l) => l.includes(heading));
    return i >= 0 ? lines[i + 1]!.trim() : '';
  };
  return {
    subject: opensslWith(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], certPem).trim(),
    san: after('X509v3 Subject Alternative Name'),
    eku: after('X509v3 Extended Key Usage'),
    keyUsage: after('X509v3 Key Usage'),
    key: /Public Key Algorithm: (\S+)/.exec(out)![1]! + (/\((\d+) bit\)/.exec(out)?.[1] ?? ''),
  };
}

interface Fixture {
  ca: Pem;
  leaf: Pem;
  target: SecretInfo;
  caSource: CaSource;
}

// One CA and one serving pair per key type, made once (openssl is slow).
const fixtures = (() => {
  const ca = makeCa({ cn: 'hooks-ca', days: 3650, back: 400 });
  const ec = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook', 'hook.hooks', 'hook.hooks.svc'], days: 365, back: 300 });
  const rsa = issueServing(ca, { cn: 'certgen.hooks.svc', dns: ['certgen.hooks.svc'], days: 365, back: 10, key: 'rsa' });
  return { ca, ec, rsa };
})();

const cases: [string, () => Fixture, { chained: boolean; keyKeys: [string, string] }][] = [
  [
    'kubernetes.io/tls with ca.crt/ca.key beside it (EC P-256)',
    () => {
      const { ca, ec } = fixtures;
      const target = secret('hook-tls', { 'tls.crt': b64(ec.certPem), 'tls.key': b64(ec.keyPem), 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) });
      return { ca, leaf: ec, target, caSource: { secret: target, certKey: 'ca.crt', keyKey: 'ca.key' } };
    },
    { chained: false, keyKeys: ['tls.crt', 'tls.key'] },
  ],
  [
    "kube-webhook-certgen's cert/key, CA in another Secret (RSA-2048)",
    () => {
      const { ca, rsa } = fixtures;
      const target = secret('certgen', { cert: b64(rsa.certPem), key: b64(rsa.keyPem) });
      return { ca, leaf: rsa, target, caSource: { secret: secret('certgen-ca', { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem) }), certKey: 'tls.crt', keyKey: 'tls.key' } };
    },
    { chained: false, keyKeys: ['cert', 'key'] },
  ],
  [
    "rancher-webhook's tls.crt: the leaf followed by its CA",
    () => {
      const { ca, ec } = fixtures;
      const target = secret('cattle-webhook-tls', { 'tls.crt': b64(ec.certPem + ca.certPem), 'tls.key': b64(ec.keyPem) });
      return { ca, leaf: ec, target, caSource: { secret: secret('cattle-webhook-ca', { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem) }), certKey: 'tls.crt', keyKey: 'tls.key' } };
    },
    { chained: true, keyKeys: ['tls.crt', 'tls.key'] },
  ],
];

describe('renewServingSecret', () => {
  test.each(cases)('%s', async (_name, make, want) => {
    const f = make();
    const r = await renewServingSecret(f.target, f.caSource, NOW);
    const [certKey, keyKey] = want.keyKeys;
    // Only the pair's two keys change; ca.crt and the rest stay as they are.
    expect(Object.keys(r.data).sort()).toEqual([certKey, keyKey].sort());
    const certPem = text(r.data[certKey]);
    const keyPem = text(r.data[keyKey]);
    const blocks = certPem.match(/-----BEGIN CERTIFICATE-----/g)!.length;
    expect(blocks).toBe(want.chained ? 2 : 1);
    if (want.chained) expect(new X509Certificate(certPem.slice(certPem.indexOf('-----BEGIN', 10))).fingerprint256).toBe(new X509Certificate(f.ca.certPem).fingerprint256);
    expect(opensslVerify(f.ca.certPem, certPem)).toBe('OK');
    // Same identity and usages, a key of the same type, a new key and serial.
    expect(identity(certPem)).toEqual(identity(f.leaf.certPem));
    const renewed = new X509Certificate(certPem);
    const old = new X509Certificate(f.leaf.certPem);
    expect(renewed.serialNumber).not.toBe(old.serialNumber);
    expect(r.oldSerial.toUpperCase()).toBe(old.serialNumber.toUpperCase());
    expect(renewed.publicKey.export({ type: 'spki', format: 'der' }).equals(old.publicKey.export({ type: 'spki', format: 'der' }))).toBe(false);
    expect(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).equals(renewed.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    // The key is encoded as the old one was (PKCS#8 from openssl genpkey).
    expect(keyPem.split('\n')[0]).toBe(f.leaf.keyPem.split('\n')[0]);
    // The old lifetime, from an hour back; not clamped (the CA outlives it).
    const lifetime = Date.parse(old.validTo) - Date.parse(old.validFrom);
    expect(r.clampedToCa).toBe(false);
    expect(Date.parse(renewed.validFrom)).toBeLessThanOrEqual(NOW.getTime() - 3600_000 + 1000);
    expect(Date.parse(renewed.validTo) - Date.parse(renewed.validFrom)).toBe(lifetime);
  });

  test("a lifetime that would outlive the CA ends with the CA", async () => {
    const ca = makeCa({ cn: 'short-ca', days: 60, back: 30 });
    const leaf = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'], days: 50, back: 29 });
    const target = secret('hook-tls', { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) });
    const r = await renewServingSecret(target, { secret: target, certKey: 'ca.crt', keyKey: 'ca.key' }, NOW);
    expect(r.clampedToCa).toBe(true);
    expect(r.notAfter.getTime()).toBe(Date.parse(new X509Certificate(ca.certPem).validTo));
    expect(opensslVerify(ca.certPem, text(r.data['tls.crt']))).toBe('OK');
    expect(r.notAfter.getTime() - NOW.getTime()).toBeLessThan(31 * DAY);
  });

  const refusals: [string, () => { target: SecretInfo; caSource: CaSource }, RegExp][] = [
    [
      'a CA key that is not the CA certificate\'s key',
      () => {
        const other = makeCa({ cn: 'other-ca' });
        const { ca, ec } = fixtures;
        const target = secret('hook-tls', { 'tls.crt': b64(ec.certPem), 'tls.key': b64(ec.keyPem), 'ca.crt': b64(ca.certPem), 'ca.key': b64(other.keyPem) });
        return { target, caSource: { secret: target, certKey: 'ca.crt', keyKey: 'ca.key' } };
      },
      /Secret hooks\/hook-tls ca\.key: private key does not match CA certificate Secret hooks\/hook-tls ca\.crt/,
    ],
    [
      'a CA that did not sign the certificate',
      () => {
        const other = makeCa({ cn: 'hooks-ca' });
        const { ec } = fixtures;
        const target = secret('hook-tls', { 'tls.crt': b64(ec.certPem), 'tls.key': b64(ec.keyPem) });
        return { target, caSource: { secret: secret('hook-ca', { 'tls.crt': b64(other.certPem), 'tls.key': b64(other.keyPem) }), certKey: 'tls.crt', keyKey: 'tls.key' } };
      },
      /Secret hooks\/hook-tls tls\.crt: .*not signed by|Secret hooks\/hook-tls tls\.crt: .*signature/i,
    ],
    [
      'an expired CA',
      () => {
        const ca = makeCa({ cn: 'old-ca', days: 10, back: 20 });
        const leaf = issueServing(ca, { cn: 'hook.hooks.svc', dns: ['hook.hooks.svc'], days: 5, back: 19 });
        const target = secret('hook-tls', { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) });
        return { target, caSource: { secret: target, certKey: 'ca.crt', keyKey: 'ca.key' } };
      },
      /Secret hooks\/hook-tls ca\.crt: the CA expired on/,
    ],
    [
      'a tls.key that is not the certificate\'s key',
      () => {
        const { ca, ec, rsa } = fixtures;
        const target = secret('hook-tls', { 'tls.crt': b64(ec.certPem), 'tls.key': b64(rsa.keyPem), 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) });
        return { target, caSource: { secret: target, certKey: 'ca.crt', keyKey: 'ca.key' } };
      },
      /Secret hooks\/hook-tls tls\.key: private key does not match certificate Secret hooks\/hook-tls tls\.crt/,
    ],
  ];

  test.each(refusals)('refuses %s, naming the Secret and key, and no key material', async (_name, make, message) => {
    const { target, caSource } = make();
    const err = await renewServingSecret(target, caSource, NOW).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(message);
    expect(err!.message).not.toMatch(/PRIVATE KEY|BEGIN/);
  });
});
