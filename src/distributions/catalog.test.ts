import { describe, expect, test } from '@jest/globals';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHost } from '../host/rotation.js';
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
    // NewSignedCert's 365 days and its environment override, except where rke2 does
    // not sign (the self-signed cert-dir pairs).
    expect(f.validity).toEqual(
      f.renewal.kind === 'remove-to-regenerate'
        ? { days: 365, notBefore: 'one-hour-back-clamped-to-ca' }
        : { days: 365, notBefore: 'one-hour-back-clamped-to-ca', daysFromEnv: 'CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS' },
    );
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

// Rancher's RKE2 rotation also removes server/manifests/rke2-*.yaml; certrotator
// does not, for the reasons in the writableDirs comment of rke2/catalog.ts, and its
// security rule is that the agent writes only inside the catalog's paths.
test('RKE2: the agent may not write in server/manifests (nor elsewhere in the data dir)', async () => {
  const root = await fs.mkdtemp(join(tmpdir(), 'certrotator-catalog-'));
  try {
    const host = openHost(catalogFor('rke2'), root, 'var/lib/rancher/rke2');
    for (const refused of ['server/manifests/rke2-canal.yaml', 'server/manifests', 'server/token', 'server/db/etcd/config', 'server/tlsx/a', 'server/tls-']) {
      await expect(host.assertWritable(`var/lib/rancher/rke2/${refused}`)).rejects.toThrow('refusing to write outside');
    }
    for (const allowed of ['server/tls/client-admin.crt', 'server/tls-1700000000/certrotator/journal.json', 'server/.certrotator-partial-tls-1700000000', 'agent/tls-1700000000', 'force-restart']) {
      await expect(host.assertWritable(`var/lib/rancher/rke2/${allowed}`)).resolves.toBe(join(root, `var/lib/rancher/rke2/${allowed}`));
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('RKE2: CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS is read from the rke2 units\' EnvironmentFile= paths, in unit order', () => {
  expect(catalogFor('rke2').serviceEnvironment).toEqual([
    {
      unit: 'rke2-server',
      whenRoleIn: ['etcd', 'controlplane'],
      files: ['etc/default/rke2-server', 'etc/sysconfig/rke2-server', 'usr/local/lib/systemd/system/rke2-server.env', 'opt/rke2/lib/systemd/system/rke2-server.env'],
    },
    {
      unit: 'rke2-agent',
      whenRoleIn: ['worker'],
      files: ['etc/default/rke2-agent', 'etc/sysconfig/rke2-agent', 'usr/local/lib/systemd/system/rke2-agent.env', 'opt/rke2/lib/systemd/system/rke2-agent.env'],
    },
  ]);
});

test('RKE2: client-admin is embedded in rke2.yaml, which rke2-server rewrites at start', () => {
  expect(catalogFor('rke2').services.admin!.files[0]!.embeddedIn).toEqual([
    { path: 'etc/rancher/rke2/rke2.yaml', format: 'kubeconfig-client-certificate-data', rewrittenOnStartOf: 'rke2-server', serverCa: '{dataDir}/server/tls/server-ca.crt' },
  ]);
});

// cluster/plan.go BuildEtcdProcess: with internal_address set, etcd listens on
// that address only; loopback would refuse every check on such a host.
test('RKE: etcd is checked on the node IP, where it listens whatever internal_address says', () => {
  const rke = catalogFor('rke');
  expect(rke.services.etcd!.files[0]!.servedOn).toEqual([{ port: 2379, on: 'node-ip' }, { port: 2380, on: 'node-ip' }]);
  expect(rke.probes.find((p) => p.component === 'etcd')).toMatchObject({ port: 2379, on: 'node-ip' });
});
