import { describe, expect, test } from '@jest/globals';
import { secretBackupName } from '../../api/names.js';
import { BACKUP_LABELS, backupOf, restoredFrom, type SecretObject } from './backup.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const OWNER = { name: 'webhooks', uid: '5d1c3c52-0000-4000-8000-000000000001', generation: 3 };
const original: SecretObject = {
  metadata: {
    namespace: 'cattle-system',
    name: 'cattle-webhook-tls',
    resourceVersion: '4711',
    labels: { 'app.kubernetes.io/managed-by': 'rancher' },
    annotations: { 'listener.cattle.io/fingerprint': 'SHA1=AB', 'kubectl.kubernetes.io/last-applied-configuration': `{"data":{"tls.key":"${b64('-----BEGIN PRIVATE KEY-----')}"}}` },
  },
  type: 'kubernetes.io/tls',
  data: { 'tls.crt': b64('leaf'), 'tls.key': b64('key'), extra: b64('kept') },
};

describe('backupOf', () => {
  const backup = backupOf(original, OWNER);

  test('beside the original, owned by the rotation, Opaque, every data key copied', () => {
    expect(backup.metadata).toMatchObject({
      namespace: 'cattle-system',
      name: secretBackupName('cattle-webhook-tls', 'webhooks', 3),
      labels: { [BACKUP_LABELS.of]: 'cattle-webhook-tls', [BACKUP_LABELS.rotation]: 'webhooks' },
      ownerReferences: [{ apiVersion: 'certrotator.io/v1alpha1', kind: 'CertificateRotation', name: 'webhooks', uid: OWNER.uid, controller: true, blockOwnerDeletion: false }],
    });
    expect(backup.type).toBe('Opaque');
    expect(backup.data).toEqual(original.data);
    expect(backup.data).not.toBe(original.data);
  });

  test("kubectl's last-applied annotation, which repeats the data, is not copied; no key material outside data", () => {
    const outsideData = JSON.stringify({ ...backup, data: undefined });
    expect(outsideData).not.toContain('last-applied-configuration');
    expect(outsideData).not.toContain(b64('-----BEGIN PRIVATE KEY-----'));
    expect(outsideData).not.toContain(b64('key'));
  });

  test('the same inputs give the same name (a restarted controller meets AlreadyExists); another generation or rotation another', () => {
    expect(backupOf(original, OWNER).metadata.name).toBe(backup.metadata.name);
    expect(backupOf(original, { ...OWNER, generation: 4 }).metadata.name).not.toBe(backup.metadata.name);
    expect(backupOf(original, { ...OWNER, name: 'other' }).metadata.name).not.toBe(backup.metadata.name);
    expect(backup.metadata.name).toMatch(/^cattle-webhook-tls-crbak-g3-[0-9a-f]{10}$/);
  });

  test('a 253-character Secret name still gives a valid name and label', () => {
    const long = { ...original, metadata: { ...original.metadata, name: 'a'.repeat(253) } };
    const b = backupOf(long, OWNER);
    expect(b.metadata.name.length).toBeLessThanOrEqual(253);
    expect(b.metadata.labels![BACKUP_LABELS.of]!.length).toBeLessThanOrEqual(63);
    expect(restoredFrom(b).metadata.name).toBe('a'.repeat(253));
  });
});

describe('restoredFrom', () => {
  test('gives back the Secret as it was: name, type, labels, annotations (less last-applied), data', () => {
    const r = restoredFrom(backupOf(original, OWNER));
    expect(r).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { namespace: 'cattle-system', name: 'cattle-webhook-tls', labels: original.metadata.labels, annotations: { 'listener.cattle.io/fingerprint': 'SHA1=AB' } },
      type: 'kubernetes.io/tls',
      data: original.data,
    });
  });

  test('refuses a Secret that is not a backup, and a backup whose annotations were edited into something else', () => {
    expect(() => restoredFrom(original)).toThrow('Secret cattle-system/cattle-webhook-tls is not a certrotator backup');
    const b = backupOf(original, OWNER);
    b.metadata.annotations!['certrotator.io/backup-of-labels'] = 'not json';
    expect(() => restoredFrom(b)).toThrow(/annotation certrotator\.io\/backup-of-labels is not the JSON object/);
  });
});
