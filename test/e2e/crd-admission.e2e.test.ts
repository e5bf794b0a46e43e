// The CRDs in crds/ against a real kube-apiserver: bad objects are refused at
// admission with a message a person understands, good objects get their
// defaults, status.observedGeneration reads -1 before any controller wrote it,
// the printer columns show, and unknown fields are refused under strict field
// validation.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../cluster/kubectl.js';

const CRDS_DIR = join(process.cwd(), 'crds');
const API_VERSION = 'certrotator.io/v1alpha1';
const PREFIX = 'adm-';

function rotation(name: string, spec?: Record<string, unknown>): string {
  return stringify({ apiVersion: API_VERSION, kind: 'CertificateRotation', metadata: { name: PREFIX + name }, ...(spec ? { spec } : {}) });
}

const nodeSpec = {
  rotation: 'r',
  generation: 1,
  runID: 'uid-g1',
  nodeName: 'server-1',
  role: 'etcd,controlplane',
  distribution: 'rke2',
  scope: 'Service',
  services: ['etcd'],
};
function nodeRotation(name: string, spec: Record<string, unknown>): string {
  return stringify({ apiVersion: API_VERSION, kind: 'NodeRotation', metadata: { name: PREFIX + name }, spec });
}

async function create(manifest: string, extra: string[] = []) {
  return kubectl(['create', ...extra, '-f', '-'], { input: manifest });
}

/** Collapse kubectl's line wrapping so a message can be matched as one string. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ');
}

beforeAll(async () => {
  await kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', CRDS_DIR]);
  await kubectlOk([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/certificaterotations.certrotator.io',
    'crd/noderotations.certrotator.io',
    'crd/certificateinventories.certrotator.io',
    'crd/certificaterotationpolicies.certrotator.io',
  ]);
});

afterAll(async () => {
  const list = async (kind: string): Promise<string[]> =>
    (await kubectlOk(['get', kind, '-o', 'name'])).split('\n').filter((n) => n.includes(`/${PREFIX}`));
  for (const kind of ['certificaterotations', 'noderotations', 'certificateinventories', 'certificaterotationpolicies']) {
    const names = await list(kind);
    if (names.length > 0) await kubectlOk(['delete', '--wait=false', ...names]);
  }
});

describe('CertificateRotation admission: refused with a readable message', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['scope Service without a service', { scope: 'Service' }, 'spec.service: Required value: spec.service is required when spec.scope is Service: name the one service to rotate'],
    ['a service with scope All (the default)', { service: 'kubelet' }, 'spec.service: Forbidden: spec.service is only allowed with spec.scope: Service'],
    ['a service with scope All, said explicitly', { scope: 'All', service: 'etcd' }, 'scope All (the default) rotates every service, so remove spec.service or set spec.scope: Service'],
    ['an RKE service name on RKE2', { distribution: 'rke2', scope: 'Service', service: 'kube-apiserver' }, 'spec.service "kube-apiserver" is not an RKE2 service; RKE2 services are: admin, api-server,'],
    ['an RKE2 service name on RKE', { distribution: 'rke', scope: 'Service', service: 'api-server' }, 'spec.service "api-server" is not an RKE service; RKE services are: etcd, kubelet, kube-apiserver,'],
    ['rke2-server on RKE', { distribution: 'rke', scope: 'Service', service: 'rke2-server' }, 'spec.service "rke2-server" is not an RKE service'],
    ['a name no distribution has', { scope: 'Service', service: 'kube-dns' }, 'spec.service "kube-dns" is not a service of any supported distribution (RKE2: admin,'],
    ['an unsupported distribution', { distribution: 'kubeadm' }, 'spec.distribution: Unsupported value: "kubeadm": supported values: "rke2", "rke"'],
    ['an unknown scope', { scope: 'Everything' }, 'spec.scope: Unsupported value: "Everything": supported values: "All", "Service"'],
    ['an unknown mode', { mode: 'DryRun' }, 'spec.mode: Unsupported value: "DryRun": supported values: "Apply", "Plan"'],
    ['maxUnavailable 0', { strategy: { maxUnavailable: 0 } }, 'spec.strategy.maxUnavailable must be at least 1 (worker nodes restarted at once)'],
    ['maxUnavailable negative', { strategy: { maxUnavailable: -2 } }, 'spec.strategy.maxUnavailable must be at least 1'],
    ['nodeTimeout in words', { strategy: { nodeTimeout: '10 minutes' } }, 'spec.strategy.nodeTimeout: Invalid value: "10 minutes": spec.strategy.nodeTimeout must be a duration such as 10m, 90s or 1h30m'],
    ['nodeTimeout without a unit', { strategy: { nodeTimeout: '600' } }, 'spec.strategy.nodeTimeout must be a duration such as 10m, 90s or 1h30m'],
    ['nodeTimeout beyond a day', { strategy: { nodeTimeout: '48h' } }, 'spec.strategy.nodeTimeout must be between 1s and 24h'],
    ['an unknown onFailure', { strategy: { onFailure: 'Ignore' } }, 'spec.strategy.onFailure: Unsupported value: "Ignore": supported values: "Rollback", "Halt"'],
    ['nodeSelector In without values', { strategy: { nodeSelector: { matchExpressions: [{ key: 'pool', operator: 'In' }] } } }, 'matchExpressions with operator In or NotIn need at least one value'],
    ['nodeSelector Exists with values', { strategy: { nodeSelector: { matchExpressions: [{ key: 'pool', operator: 'Exists', values: ['a'] }] } } }, 'matchExpressions with operator Exists or DoesNotExist must not list values'],
    // Not "yes": kubectl reads YAML 1.1, where an unquoted yes is a boolean.
    ['paused as a string', { paused: 'sometimes' }, 'spec.paused: Invalid value: "string": spec.paused in body must be of type boolean'],
  ])('%s', async (name, spec, message) => {
    const result = await create(rotation(name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 40), spec));
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toContain(message);
  });
});

describe('NodeRotation admission', () => {
  it('refuses an instruction with missing fields', async () => {
    const result = await create(nodeRotation('missing', { rotation: 'r', nodeName: 'n' }));
    expect(result.code).not.toBe(0);
    const err = oneLine(result.stderr);
    for (const field of ['generation', 'runID', 'role', 'distribution', 'scope', 'services']) {
      expect(err).toContain(`spec.${field}: Required value`);
    }
  });

  it('refuses an RKE service in an RKE2 instruction', async () => {
    const result = await create(nodeRotation('wrong-service', { ...nodeSpec, services: ['kube-apiserver'] }));
    expect(oneLine(result.stderr)).toContain('spec.services must all be rke2 services: admin, api-server');
  });

  it('refuses an unknown role combination', async () => {
    const result = await create(nodeRotation('bad-role', { ...nodeSpec, role: 'controlplane,etcd' }));
    expect(oneLine(result.stderr)).toContain('spec.role: Unsupported value: "controlplane,etcd"');
  });

  it('refuses a timeout that is not a duration', async () => {
    const result = await create(nodeRotation('bad-timeout', { ...nodeSpec, timeout: 'soon' }));
    expect(oneLine(result.stderr)).toContain('spec.timeout must be a duration such as 10m, 90s or 1h30m');
  });

  it('accepts a valid instruction with defaults, shows Node/Role/Phase, and keeps its spec immutable', async () => {
    await kubectlOk(['create', '-f', '-'], { input: nodeRotation('ok', nodeSpec) });
    const obj = JSON.parse(await kubectlOk(['get', 'noderotation', `${PREFIX}ok`, '-o', 'json'])) as {
      spec: Record<string, unknown>;
      status: Record<string, unknown>;
    };
    expect(obj.spec).toMatchObject({ restart: true, timeout: '10m', onFailure: 'Rollback' });
    expect(obj.status).toEqual({ phase: 'Pending' });

    const table = await kubectlOk(['get', 'noderotations', `${PREFIX}ok`]);
    expect(table.split('\n')[0]!.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'NODE', 'ROLE', 'PHASE', 'AGE']);
    expect(table.split('\n')[1]).toMatch(/^adm-ok\s+server-1\s+etcd,controlplane\s+Pending\s+\d+s/);

    const patch = await kubectl(['patch', 'noderotation', `${PREFIX}ok`, '--type=merge', '-p', '{"spec":{"services":["kubelet"]}}']);
    expect(patch.code).not.toBe(0);
    expect(oneLine(patch.stderr)).toContain('NodeRotation spec is immutable: an agent may already be acting on it');

    // The agent's report goes through the status subresource and is not blocked.
    await kubectlOk(['patch', 'noderotation', `${PREFIX}ok`, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Updating","step":"Renewing"}}']);
    expect(await kubectlOk(['get', 'noderotation', `${PREFIX}ok`, '-o', 'jsonpath={.status.phase}/{.status.step}'])).toBe('Updating/Renewing');
  });

  it('an agent can select its own instructions by spec.nodeName', async () => {
    const out = await kubectlOk(['get', 'noderotations', '--field-selector', 'spec.nodeName=server-1', '-o', 'name']);
    expect(out.trim().split('\n')).toContain(`noderotation.certrotator.io/${PREFIX}ok`);
    const none = await kubectlOk(['get', 'noderotations', '--field-selector', 'spec.nodeName=nobody', '-o', 'name']);
    expect(none.trim()).toBe('');
  });
});

describe('CertificateInventory admission', () => {
  const inventory = (name: string, status: Record<string, unknown>) => stringify({ apiVersion: API_VERSION, kind: 'CertificateInventory', metadata: { name: PREFIX + name }, status });
  const good = {
    nodeName: 'server-1', distribution: 'rke2', roles: 'etcd,controlplane,worker', scannedAt: '2026-12-03T00:00:00Z', writtenAt: '2026-12-03T00:00:01Z',
    files: 20, endpoints: 7, expired: 0, errors: 0, services: [{ name: 'etcd', notAfter: '2027-01-01T00:00:00Z', path: '/x' }], staleEndpoints: [], unreadable: [],
  };

  it('refuses a report with missing fields, an unknown distribution, or more than 16 stale endpoints', async () => {
    const missing = oneLine((await create(inventory('missing', { nodeName: 'n' }))).stderr);
    for (const field of ['distribution', 'scannedAt', 'files', 'services']) expect(missing).toContain(`status.${field}: Required value`);
    expect(oneLine((await create(inventory('bad-distribution', { ...good, distribution: 'k3s' }))).stderr)).toContain('status.distribution: Unsupported value: "k3s"');
    const many = Array.from({ length: 17 }, (_, i) => `kubelet 10.0.0.${i}:10250`);
    expect(oneLine((await create(inventory('too-many', { ...good, staleEndpoints: many }))).stderr)).toMatch(/status\.staleEndpoints: Too many: 17: must have at most 16 items/);
  });

  it('accepts a report written whole (no status subresource: one write), shown by kubectl get certinv', async () => {
    const result = await create(inventory('ok', { ...good, earliest: { service: 'etcd', notAfter: '2027-01-01T00:00:00Z', daysLeft: 29, path: '/x' } }));
    expect(result.stderr).toBe('');
    const row = (await kubectlOk(['get', 'certinv', `${PREFIX}ok`, '--no-headers'])).trim();
    expect(row).toMatch(new RegExp(`^${PREFIX}ok\\s+etcd,controlplane,worker\\s+etcd\\s+2027-01-01T00:00:00Z\\s+29\\s+0\\s+0\\s+`));
    await kubectlOk(['delete', 'certinv', `${PREFIX}ok`]);
  });
});

describe('CertificateRotationPolicy admission', () => {
  const policy = (name: string, spec: Record<string, unknown>) => stringify({ apiVersion: API_VERSION, kind: 'CertificateRotationPolicy', metadata: { name: PREFIX + name }, spec });
  const window = { startTime: '02:00', endTime: '04:00' };
  it.each<[string, Record<string, unknown>, string]>([
    ['startTime not HH:MM', { window: { ...window, startTime: '2:00' } }, 'spec.window.startTime: Invalid value: "2:00": spec.window.startTime must be a time of day HH:MM between 00:00 and 23:59, e.g. 02:00'],
    ['endTime past 23:59', { window: { ...window, endTime: '24:00' } }, 'spec.window.endTime must be a time of day HH:MM between 00:00 and 23:59'],
    ['a window with no length', { window: { startTime: '03:00', endTime: '03:00' } }, 'spec.window.endTime: Invalid value: spec.window.startTime and spec.window.endTime must differ (omit spec.window for "any time")'],
    ['an unknown day', { window: { ...window, days: ['monday', 'funday'] } }, 'spec.window.days[1]: Unsupported value: "funday": supported values: "sunday", "monday",'],
    ['a day twice', { window: { ...window, days: ['monday', 'monday'] } }, 'spec.window.days must not name a day twice'],
    ['no days', { window: { ...window, days: [] } }, 'spec.window.days: Invalid value: 0: spec.window.days in body should have at least 1 items'],
    ['a time zone that is not a zone name', { window: { ...window, timeZone: 'Central European Time' } }, 'spec.window.timeZone must be an IANA time zone name such as UTC or Europe/Berlin'],
    ['renewBefore 0', { renewBefore: '0s' }, 'spec.renewBefore must be more than 0 and at most 87600h (10 years)'],
    ['renewBefore in days', { renewBefore: '90d' }, 'spec.renewBefore must be a duration such as 2160h (90 days) or 720h'],
    ['historyLimit 0', { historyLimit: 0 }, 'spec.historyLimit: Invalid value: 0: spec.historyLimit in body should be greater than or equal to 1'],
    ['a template service with scope All', { template: { service: 'etcd' } }, 'spec.template.service: Forbidden: spec.template.service is only allowed with spec.template.scope: Service'],
    ['a template service of the wrong distribution', { template: { distribution: 'rke2', scope: 'Service', service: 'kube-apiserver' } }, 'spec.template.service "kube-apiserver" is not an RKE2 service'],
    ['a mode in the template (the policy always applies)', { template: { mode: 'Plan' } }, 'unknown field "spec.template.mode"'],
  ])('refuses %s, naming the field', async (name, spec, message) => {
    const result = await create(policy(name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 40), spec), ['--validate=strict']);
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toContain(message);
  });

  it('accepts an empty spec with the documented defaults, shown by kubectl get crpol', async () => {
    expect((await create(policy('defaults', {}))).stderr).toBe('');
    const obj = JSON.parse(await kubectlOk(['get', 'crpol', `${PREFIX}defaults`, '-o', 'json']));
    expect(obj.spec).toEqual({
      renewBefore: '2160h', historyLimit: 3, suspend: false, renewExpiredOutsideWindow: false,
      template: { scope: 'All', strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' } },
    });
    expect((await create(policy('window-defaults', { window }))).stderr).toBe('');
    const withWindow = JSON.parse(await kubectlOk(['get', 'crpol', `${PREFIX}window-defaults`, '-o', 'json']));
    expect(withWindow.spec.window).toEqual({ ...window, timeZone: 'UTC', days: ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] });
    const header = (await kubectlOk(['get', 'certrotationpolicy', `${PREFIX}defaults`])).split('\n')[0]!;
    expect(header.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'RENEW-BEFORE', 'NEXT-EXPIRY', 'NEXT-WINDOW', 'LAST', 'AGE']);
    await kubectlOk(['delete', 'crpol', `${PREFIX}defaults`, `${PREFIX}window-defaults`]);
  });
});

describe('strict field validation', () => {
  const withUnknown = stringify({
    apiVersion: API_VERSION,
    kind: 'CertificateRotation',
    metadata: { name: `${PREFIX}unknown-field` },
    spec: { scope: 'All', bogus: true, strategy: { maxUnavailabel: 2 } },
  });

  it('kubectl create --validate=strict refuses unknown fields, naming them', async () => {
    const result = await create(withUnknown, ['--validate=strict']);
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toContain('unknown field "spec.bogus"');
    expect(oneLine(result.stderr)).toContain('unknown field "spec.strategy.maxUnavailabel"');
  });

  it('server-side apply with strict validation refuses them too', async () => {
    const result = await kubectl(['apply', '--server-side', '--validate=strict', '-f', '-'], { input: withUnknown });
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toContain('.spec.bogus: field not declared in schema');
  });

  it('with validation off, the structural schema prunes them instead of storing them', async () => {
    await kubectlOk(['create', '--validate=false', '-f', '-'], { input: withUnknown });
    const spec = JSON.parse(await kubectlOk(['get', 'crot', `${PREFIX}unknown-field`, '-o', 'jsonpath={.spec}'])) as Record<string, unknown>;
    expect(spec).not.toHaveProperty('bogus');
    expect(spec.strategy).not.toHaveProperty('maxUnavailabel');
  });
});

describe('CertificateRotation: accepted objects', () => {
  it('an object with no spec gets every default, and status.observedGeneration is -1 on a status read', async () => {
    await kubectlOk(['create', '-f', '-'], { input: rotation('minimal') });
    const spec = JSON.parse(await kubectlOk(['get', 'certificaterotation', `${PREFIX}minimal`, '-o', 'jsonpath={.spec}'])) as unknown;
    expect(spec).toEqual({
      scope: 'All',
      mode: 'Apply',
      paused: false,
      strategy: { maxUnavailable: 1, nodeTimeout: '10m', onFailure: 'Rollback' },
    });
    const status = JSON.parse(
      await kubectlOk(['get', '--raw', `/apis/certrotator.io/v1alpha1/certificaterotations/${PREFIX}minimal/status`]),
    ) as { status: unknown };
    expect(status.status).toEqual({ observedGeneration: -1 });
  });

  it.each<[string, Record<string, unknown>]>([
    ['rke2-api-server', { distribution: 'rke2', scope: 'Service', service: 'api-server' }],
    ['rke2-supervisor', { distribution: 'rke2', scope: 'Service', service: 'supervisor' }],
    ['rke-kube-apiserver', { distribution: 'rke', scope: 'Service', service: 'kube-apiserver' }],
    ['detect-etcd', { scope: 'Service', service: 'etcd' }],
    ['detect-kube-scheduler', { scope: 'Service', service: 'kube-scheduler' }],
    ['full-strategy', { mode: 'Plan', paused: true, strategy: { maxUnavailable: 50, nodeTimeout: '1h30m', onFailure: 'Halt', nodeSelector: { matchLabels: { pool: 'a' }, matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['z9'] }, { key: 'gpu', operator: 'DoesNotExist' }] } } }],
  ])('accepts %s', async (name, spec) => {
    const result = await create(rotation(name, spec));
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('kubectl get certrotations shows Scope, Service, Phase, Progress, Current, Age; -o wide adds Distribution, Message', async () => {
    const name = `${PREFIX}rke2-api-server`;
    await kubectlOk([
      'patch', 'certificaterotation', name, '--subresource=status', '--type=merge', '-p',
      JSON.stringify({
        status: {
          observedGeneration: 1,
          distribution: 'rke2',
          phase: 'Progressing',
          progress: '2/6',
          current: 'server-3',
          conditions: [{ type: 'Ready', status: 'False', reason: 'Progressing', message: 'rotating server-3', lastTransitionTime: '2026-01-01T00:00:00Z' }],
        },
      }),
    ]);
    const table = (await kubectlOk(['get', 'certrotations', name])).split('\n');
    expect(table[0]!.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE']);
    expect(table[1]).toMatch(new RegExp(`^${name}\\s+Service\\s+api-server\\s+Progressing\\s+2/6\\s+server-3\\s+\\d+s`));

    const wide = (await kubectlOk(['get', 'crot', name, '-o', 'wide'])).split('\n');
    expect(wide[0]!.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'SCOPE', 'SERVICE', 'PHASE', 'PROGRESS', 'CURRENT', 'AGE', 'DISTRIBUTION', 'MESSAGE']);
    expect(wide[1]).toMatch(/rke2\s+rotating server-3$/);
  });

  it('the short names and the category list the rotations', async () => {
    for (const resource of ['certrotation', 'certrotations', 'crot', 'certrotator']) {
      const out = await kubectlOk(['get', resource, '-o', 'name']);
      expect(out).toContain(`certificaterotation.certrotator.io/${PREFIX}minimal`);
    }
  });

  it('a status write cannot change the spec, and a spec write cannot change the status', async () => {
    const name = `${PREFIX}detect-etcd`;
    await kubectlOk(['patch', 'crot', name, '--type=merge', '-p', '{"status":{"phase":"Succeeded"}}']);
    expect(await kubectlOk(['get', 'crot', name, '-o', 'jsonpath={.status.phase}'])).toBe('');
    await kubectlOk(['patch', 'crot', name, '--subresource=status', '--type=merge', '-p', '{"spec":{"paused":true}}']);
    expect(await kubectlOk(['get', 'crot', name, '-o', 'jsonpath={.spec.paused}'])).toBe('false');
  });
});
