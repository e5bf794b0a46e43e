import { describe, expect, test } from '@jest/globals';
import { allFiles, catalogFor } from './index.js';
import { DISTRIBUTIONS, SERVICES_BY_DISTRIBUTION } from './services.js';

describe.each(DISTRIBUTIONS)('%s catalog', (distribution) => {
  const catalog = catalogFor(distribution);

  test('has an entry for exactly the CRD service names', () => {
    expect(Object.keys(catalog.services).sort()).toEqual([...SERVICES_BY_DISTRIBUTION[distribution]].sort());
  });

  test('file ids and paths are unique', () => {
    const files = allFiles(catalog);
    expect(new Set(files.map((f) => f.id)).size).toBe(files.length);
    const paths = files.flatMap((f) => [f.cert, f.key]).filter(Boolean);
    expect(new Set(paths).size).toBe(paths.length);
  });

  test('every signed file names a CA the catalog creates', () => {
    const caCerts = new Set(catalog.cas.map((c) => c.files.cert));
    for (const f of allFiles(catalog)) {
      if (f.renewal.kind === 'sign' || f.renewal.kind === 'trigger') expect(caCerts.has(f.renewal.ca.cert)).toBe(true);
      if (f.renewal.kind === 'reissued-on-start') expect(caCerts.has(f.renewal.signer.cert)).toBe(true);
    }
  });
});

test('RKE2: ECDSA P-256 SEC1 keys, chained .crt files, 365 days clamped to the CA', () => {
  for (const f of allFiles(catalogFor('rke2'))) {
    expect(f.keyAlgorithm).toEqual({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(f.keyEncoding).toBe('sec1');
    expect(f.chained).toBe(true);
    expect(f.validity).toEqual({ days: 365, notBefore: 'one-hour-back-clamped-to-ca' });
  }
});

test('RKE: RSA-2048 PKCS#1 keys, leaf-only .pem files, ten years from the CA NotBefore', () => {
  for (const f of allFiles(catalogFor('rke'))) {
    expect(f.keyAlgorithm).toEqual({ name: 'RSA', modulusLength: 2048 });
    expect(f.keyEncoding).toBe('pkcs1');
    expect(f.chained).toBe(false);
    expect(f.validity).toEqual({ days: 3650, notBefore: 'ca-not-before' });
  }
});

test('the commonly forgotten pieces are in the data', () => {
  const rke2 = catalogFor('rke2');
  expect(rke2.services.supervisor!.files.map((f) => f.cert)).toEqual(['{dataDir}/server/tls/client-supervisor.crt']);
  expect(rke2.services['rke2-server']!.files[0]!.renewal).toMatchObject({ kind: 'trigger', trigger: '{dataDir}/server/tls/dynamic-cert-regenerate' });
  expect(rke2.services['rke2-server']!.clusterObjects).toEqual([expect.objectContaining({ namespace: 'kube-system', name: 'rke2-serving' })]);
  expect(rke2.services['controller-manager']!.files.map((f) => f.cert)).toContain('{dataDir}/server/tls/kube-controller-manager/kube-controller-manager.crt');
  expect(rke2.services.scheduler!.files.map((f) => f.cert)).toContain('{dataDir}/server/tls/kube-scheduler/kube-scheduler.crt');
  const rke = catalogFor('rke');
  expect(rke.services.kubelet!.files.map((f) => f.cert)).toContain('etc/kubernetes/ssl/kube-node.pem');
  expect(rke.services.etcd!.files.map((f) => f.cert)).toEqual(['etc/kubernetes/ssl/kube-etcd-{host}.pem']);
  expect(rke.clusterObjects).toEqual([expect.objectContaining({ kind: 'Secret', namespace: 'kube-system', name: 'full-cluster-state' })]);
});
