import { describe, expect, it } from '@jest/globals';
import type { V1Secret } from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import type { Distribution } from '../distributions/index.js';
import { createMetrics } from '../observability/metrics.js';
import { caFromMaterial, createCa, issueLeaf } from '../simulation/issue.js';
import { SecretInventory } from './secret-inventory.js';

const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

async function servingPair(days: number): Promise<{ certPem: string; keyPem: string }> {
  const ca = await caFromMaterial(await createCa('rke2-server-ca@1', P256, 'sec1'));
  return issueLeaf({ template: { cn: 'rke2', eku: ['serverAuth'] }, ca, validity: { days, notBefore: 'one-hour-back-clamped-to-ca' }, algorithm: P256, encoding: 'sec1', chained: true });
}

const tlsSecret = (certPem: string, keyPem = ''): V1Secret => ({
  type: 'kubernetes.io/tls',
  data: { 'tls.crt': Buffer.from(certPem).toString('base64'), 'tls.key': Buffer.from(keyPem).toString('base64') },
});

const opensslNotAfter = (pem: string): number =>
  Math.floor(Date.parse(execFileSync('openssl', ['x509', '-noout', '-enddate'], { input: pem, encoding: 'utf8' }).trim().replace(/^notAfter=/, '')) / 1000);

describe('SecretInventory', () => {
  it.each<{ name: string; distribution: Distribution | undefined; secret: () => Promise<V1Secret | undefined>; read: string[]; errors: string[]; series: RegExp[]; absent: RegExp[] }>([
    {
      name: 'RKE2: kube-system/rke2-serving is read, under its service',
      distribution: 'rke2',
      secret: async () => tlsSecret((await servingPair(365)).certPem),
      read: ['kube-system/rke2-serving'],
      errors: [],
      series: [/^certrotator_certificate_not_after_timestamp_seconds\{service="rke2-server",secret="kube-system\/rke2-serving"\} \d+$/m, /^certrotator_certificate_expired\{service="rke2-server",secret="kube-system\/rke2-serving"\} 0$/m],
      absent: [/certrotator_certificate_read_errors_total\{/],
    },
    {
      name: 'RKE2: an expired one is flagged',
      distribution: 'rke2',
      secret: async () => tlsSecret((await servingPair(-1)).certPem),
      read: ['kube-system/rke2-serving'],
      errors: [],
      series: [/^certrotator_certificate_expired\{service="rke2-server",secret="kube-system\/rke2-serving"\} 1$/m],
      absent: [],
    },
    {
      name: 'RKE2: not written yet (the supervisor never served): nothing, and no error',
      distribution: 'rke2',
      secret: async () => undefined,
      read: [],
      errors: [],
      series: [],
      absent: [/secret=/],
    },
    {
      name: 'RKE2: no certificate in tls.crt is a read error, named',
      distribution: 'rke2',
      secret: async () => tlsSecret('not a certificate'),
      read: [],
      errors: ['kube-system/rke2-serving'],
      series: [/^certrotator_certificate_read_errors_total\{service="rke2-server",secret="kube-system\/rke2-serving"\} 1$/m],
      absent: [/certrotator_certificate_not_after_timestamp_seconds\{/],
    },
    {
      name: 'RKE: full-cluster-state is not a TLS Secret; nothing is read',
      distribution: 'rke',
      secret: async () => {
        throw new Error('must not be read');
      },
      read: [],
      errors: [],
      series: [],
      absent: [/secret=/],
    },
    {
      name: 'distribution unknown (no nodes, mixed): nothing',
      distribution: undefined,
      secret: async () => {
        throw new Error('must not be read');
      },
      read: [],
      errors: [],
      series: [],
      absent: [/secret=/],
    },
  ])('$name', async ({ distribution, secret, read, errors, series, absent }) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const asked: string[] = [];
    const inv = new SecretInventory({
      readSecret: async (ns, name) => (asked.push(`${ns}/${name}`), secret()),
      distribution: () => distribution,
      metrics,
      log: pino({ level: 'silent' }),
    });
    expect(await inv.scan()).toEqual({ read, errors });
    const text = await metrics.registry.metrics();
    for (const re of series) expect(text).toMatch(re);
    for (const re of absent) expect(text).not.toMatch(re);
    expect(text).not.toContain('PRIVATE KEY');
    if (distribution !== 'rke2') expect(asked).toEqual([]);
  });

  it('exports the notAfter openssl reads, and a Secret that went away leaves the next scan', async () => {
    const { certPem } = await servingPair(200);
    let present = true;
    const metrics = createMetrics({ defaultMetrics: false });
    const inv = new SecretInventory({ readSecret: async () => (present ? tlsSecret(certPem) : undefined), distribution: () => 'rke2', metrics, log: pino({ level: 'silent' }) });
    await inv.scan();
    expect(await metrics.registry.metrics()).toContain(`certrotator_certificate_not_after_timestamp_seconds{service="rke2-server",secret="kube-system/rke2-serving"} ${opensslNotAfter(certPem)}`);
    present = false;
    await inv.scan();
    expect(await metrics.registry.metrics()).not.toMatch(/secret=/);
  });
});
