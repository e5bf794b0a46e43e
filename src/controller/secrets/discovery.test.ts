import { MAX_LISTED_SECRET_TARGETS, type SecretTargetsSpec } from '../../api/secret-targets.js';
import { b64, issueServing, makeCa, type Pem } from '../../../test/secrets/webhook-pki.js';
import { discoverSecretTargets, type DiscoveryInput, type FrontInfo, type SecretInfo } from './discovery.js';

// Certificates from openssl, not from certrotator's engine.
let ca: Pem;
let otherCa: Pem;
let leaf: Pem;
let leafWithoutKeyIds: Pem;
let expiredCa: Pem;
let leafOfExpiredCa: Pem;
let shortCa: Pem;
let leafOfShortCa: Pem;
let leafDue: Pem;
beforeAll(() => {
  ca = makeCa({ cn: 'hook-ca' });
  otherCa = makeCa({ cn: 'hook-ca' }); // same name, other key: must not count as the signer
  leaf = issueServing(ca, { cn: 'hook.web.svc', dns: ['hook', 'hook.web', 'hook.web.svc'], days: 365 });
  leafWithoutKeyIds = issueServing(ca, { cn: 'hook.web.svc', dns: ['hook.web.svc'], noKeyIds: true });
  expiredCa = makeCa({ cn: 'old-ca', days: 30, back: 40 });
  leafOfExpiredCa = issueServing(expiredCa, { cn: 'hook.web.svc', dns: ['hook.web.svc'], days: 20, back: 35 });
  shortCa = makeCa({ cn: 'short-ca', days: 100 });
  leafOfShortCa = issueServing(shortCa, { cn: 'hook.web.svc', dns: ['hook.web.svc'], days: 365 });
  leafDue = issueServing(ca, { cn: 'rancher-webhook.cattle-system.svc', dns: ['rancher-webhook.cattle-system.svc'], days: 365, back: 300 });
});

const NOW = () => new Date();

function secret(name: string, data: Record<string, string>, extra: Partial<SecretInfo> = {}): SecretInfo {
  return { namespace: 'web', name, labels: {}, annotations: {}, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])), ...extra };
}

function front(name: string, caBundle: string | undefined, kind: FrontInfo['kind'] = 'ValidatingWebhookConfiguration'): FrontInfo {
  return { kind, name, service: { namespace: 'web', name: 'hook' }, ...(caBundle ? { caBundle } : {}) };
}

/** A Deployment "hook" whose pods mount `mounted`, behind Service web/hook, fronted by `fronts`. */
function world(fronts: FrontInfo[], secrets: SecretInfo[], mounted = ['hook-tls'], opts: { selector?: boolean } = {}): DiscoveryInput {
  return {
    fronts,
    services: [{ namespace: 'web', name: 'hook', ...(opts.selector === false ? {} : { selector: { app: 'hook' } }), endpointPods: opts.selector === false ? ['hook-abc-1'] : [] }],
    pods: [{ namespace: 'web', name: 'hook-abc-1', labels: { app: 'hook' }, owner: { kind: 'ReplicaSet', name: 'hook-abc' }, secretNames: mounted }],
    replicaSetOwners: new Map([['web/hook-abc', { kind: 'Deployment', name: 'hook' }]]),
    secrets,
    now: NOW(),
  };
}

const tlsPair = (p: Pem, caPem?: Pem) => ({ 'tls.crt': p.certPem, 'tls.key': p.keyPem, ...(caPem ? { 'ca.crt': caPem.certPem } : {}) });

describe('discoverSecretTargets', () => {
  const cases: {
    name: string;
    input: () => DiscoveryInput;
    spec?: SecretTargetsSpec;
    want: Record<string, unknown>;
    reason?: RegExp;
  }[] = [
    {
      name: 'CA by convention (<name without -tls>-ca) with its key: renew in place, caBundle current, workload through the ReplicaSet',
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf, ca)), secret('hook-ca', tlsPair(ca))]),
      want: { action: 'RenewInPlace', caKeyAvailable: true, caBundleCurrent: true, ca: 'web/hook-ca tls.crt', workload: 'Deployment/hook', fronts: ['ValidatingWebhookConfiguration/hook.example.com'] },
      reason: /new EC P-256 key, same subject, SANs and usages, signed by the CA in web\/hook-ca tls\.crt, valid 36[45] days \(the old certificate's lifetime\)/,
    },
    {
      name: 'CA named by annotation in another namespace',
      input: () => world([front('hook.example.com', ca.certPem)], [
        secret('hook-tls', tlsPair(leaf), { annotations: { 'certrotator.io/ca-secret': 'pki/root' } }),
        { ...secret('root', { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem }), namespace: 'pki' },
      ]),
      want: { action: 'RenewInPlace', caKeyAvailable: true, ca: 'pki/root ca.crt' },
    },
    {
      name: "a caBundle of another CA with the same name: not current (signature, not name)",
      input: () => world([front('hook.example.com', otherCa.certPem)], [secret('hook-tls', tlsPair(leafWithoutKeyIds)), secret('hook-ca', tlsPair(ca))]),
      want: { action: 'RenewInPlace', caBundleCurrent: false },
    },
    {
      name: 'CA known only from the caBundle: cannot renew, says what to annotate',
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf))]),
      want: { action: 'CannotRenew', caKeyAvailable: false, ca: 'caBundle of ValidatingWebhookConfiguration/hook.example.com only' },
      reason: /its CA is known .* but its private key is not in the cluster; looked in web\/hook-tls, web\/hook-tls-ca, web\/hook-ca\. Name the CA Secret .* certrotator\.io\/ca-secret/,
    },
    {
      name: "the CA Secret's key is another CA's: no key",
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf)), secret('hook-ca', { 'tls.crt': ca.certPem, 'tls.key': otherCa.keyPem })]),
      want: { action: 'CannotRenew', caKeyAvailable: false, ca: 'web/hook-ca tls.crt' },
    },
    {
      name: 'no CA anywhere: unknown, names the issuer',
      input: () => world([front('hook.example.com', undefined)], [secret('hook-tls', tlsPair(leaf))]),
      want: { action: 'CannotRenew', ca: 'unknown', caBundleCurrent: false },
      reason: /the CA that signed it \(issuer "CN=hook-ca"\) was not found/,
    },
    {
      name: 'managed by cert-manager: left alone, with the Certificate named',
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf, ca), { annotations: { 'cert-manager.io/certificate-name': 'hook-cert' } }), secret('hook-ca', tlsPair(ca))]),
      want: { action: 'LeaveAlone' },
      reason: /cert-manager Certificate web\/hook-cert/,
    },
    {
      name: "tls.key that is not tls.crt's key: cannot renew, says the pair is broken",
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', { 'tls.crt': leaf.certPem, 'tls.key': leafOfShortCa.keyPem }), secret('hook-ca', tlsPair(ca))]),
      want: { action: 'CannotRenew', caKeyAvailable: true, caBundleCurrent: true },
      reason: /^tls\.key is not the private key of the certificate in tls\.crt: no server can load this pair/,
    },
    {
      name: 'expired CA: cannot renew, rotate the CA first',
      input: () => world([front('hook.example.com', expiredCa.certPem)], [secret('hook-tls', tlsPair(leafOfExpiredCa)), secret('hook-ca', tlsPair(expiredCa))]),
      want: { action: 'CannotRenew', caKeyAvailable: true },
      reason: /expired on .*rotate the CA first/,
    },
    {
      name: "CA that ends before the old lifetime: validity clamped to the CA's notAfter",
      input: () => world([front('hook.example.com', shortCa.certPem)], [secret('hook-tls', tlsPair(leafOfShortCa)), secret('hook-ca', tlsPair(shortCa))]),
      want: { action: 'RenewInPlace' },
      reason: /valid (99|100) days \(clamped to the CA's notAfter\)/,
    },
    {
      name: 'kube-webhook-certgen layout (cert, key, ca) and a Service without a selector (EndpointSlice targetRef)',
      input: () => world([front('hook.example.com', ca.certPem)], [secret('hook-tls', { cert: leaf.certPem, key: leaf.keyPem, ca: ca.certPem }), secret('hook-ca', tlsPair(ca))], ['hook-tls'], { selector: false }),
      want: { action: 'RenewInPlace', workload: 'Deployment/hook' },
    },
    {
      name: 'two fronts on one Secret: one target listing both',
      input: () => world([front('b.example.com', ca.certPem, 'MutatingWebhookConfiguration'), front('a.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf)), secret('hook-ca', tlsPair(ca))]),
      want: { fronts: ['MutatingWebhookConfiguration/b.example.com', 'ValidatingWebhookConfiguration/a.example.com'] },
    },
    {
      name: 'builtIn rancher-webhook within 90 days of expiry: regenerate, CA in cattle-webhook-ca',
      input: () => rancherWorld(leafDue, ca),
      spec: { builtIn: ['rancher-webhook'] },
      want: { action: 'Regenerate', ca: 'cattle-system/cattle-webhook-ca tls.crt', workload: 'Deployment/rancher-webhook', fronts: ['MutatingWebhookConfiguration/rancher.cattle.io'] },
      reason: /back up cattle-webhook-tls, delete it and the rancher.cattle.io MutatingWebhookConfiguration, restart the app=rancher-webhook pods/,
    },
    {
      name: 'builtIn rancher-webhook with a year left: left to its owner, which renews it within 90 days (restarted now it would load the same one)',
      input: () => rancherWorld(leaf, ca),
      spec: { builtIn: ['rancher-webhook'] },
      want: { action: 'LeaveAlone', workload: 'Deployment/rancher-webhook' },
      reason: /^expires in 36[45] days: rancher-webhook makes a new certificate only within 90 days of expiry, and then renews it by itself/,
    },
    {
      name: 'builtIn rancher-webhook whose CA expired: cannot be regenerated (the owner never replaces an expired CA)',
      input: () => rancherWorld(leafOfExpiredCa, expiredCa),
      spec: { builtIn: ['rancher-webhook'] },
      want: { action: 'CannotRenew' },
      reason: /^its CA \(cattle-system\/cattle-webhook-ca tls.crt\) expired on .*: rancher-webhook makes a new CA only when cattle-system\/cattle-webhook-ca is absent, never for an expired one/,
    },
  ];

  /** rancher-webhook as Rancher installs it: Deployment, Service, the mutating configuration, cattle-webhook-tls and cattle-webhook-ca. */
  function rancherWorld(pair: Pem, caPair: Pem): DiscoveryInput {
    return {
      ...world([], []),
      fronts: [{ kind: 'MutatingWebhookConfiguration', name: 'rancher.cattle.io', service: { namespace: 'cattle-system', name: 'rancher-webhook' }, caBundle: caPair.certPem }],
      services: [{ namespace: 'cattle-system', name: 'rancher-webhook', selector: { app: 'rancher-webhook' }, endpointPods: [] }],
      pods: [{ namespace: 'cattle-system', name: 'rancher-webhook-1', labels: { app: 'rancher-webhook' }, owner: { kind: 'ReplicaSet', name: 'rancher-webhook-5d' }, secretNames: ['cattle-webhook-tls'] }],
      replicaSetOwners: new Map([['cattle-system/rancher-webhook-5d', { kind: 'Deployment', name: 'rancher-webhook' }]]),
      secrets: [
        { ...secret('cattle-webhook-tls', tlsPair(pair)), namespace: 'cattle-system' },
        { ...secret('cattle-webhook-ca', tlsPair(caPair)), namespace: 'cattle-system' },
      ],
    };
  }

  it.each(cases)('$name', ({ input, spec, want, reason }) => {
    const r = discoverSecretTargets(input(), spec ?? {});
    expect(r.unresolved).toEqual([]);
    expect(r.plan.total).toBe(1);
    expect(r.plan.targets[0]).toMatchObject(want);
    if (reason) expect(r.plan.targets[0]!.reason).toMatch(reason);
    // Counts agree with the list.
    const a = r.plan.targets[0]!.action;
    expect({ RenewInPlace: r.plan.renewInPlace, Regenerate: r.plan.regenerate, LeaveAlone: r.plan.leaveAlone, CannotRenew: r.plan.cannotRenew }[a]).toBe(1);
    expect(r.plan.renewInPlace + r.plan.regenerate + r.plan.leaveAlone + r.plan.cannotRenew).toBe(1);
  });

  it.each([
    { name: 'missing Service', mutate: (w: DiscoveryInput) => ({ ...w, services: [] }), reason: /calls Service web\/hook, which does not exist/ },
    { name: 'no pods', mutate: (w: DiscoveryInput) => ({ ...w, pods: [] }), reason: /no pods behind Service web\/hook/ },
    { name: 'pods mount no serving pair', mutate: (w: DiscoveryInput) => ({ ...w, pods: w.pods.map((p) => ({ ...p, secretNames: ['config'] })) }), reason: /mount no Secret with a serving pair .*; they mount config/ },
  ])('a front that cannot be followed is reported, not guessed: $name', ({ mutate, reason }) => {
    const r = discoverSecretTargets(mutate(world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf)), secret('config', { 'a.yaml': 'x' })])), {});
    expect(r.plan.total).toBe(0);
    expect(r.unresolved).toEqual([{ front: 'ValidatingWebhookConfiguration/hook.example.com', reason: expect.stringMatching(reason) }]);
  });

  it.each<{ name: string; spec: SecretTargetsSpec; total: number }>([
    { name: 'nothing named: every fronted Secret', spec: {}, total: 1 },
    { name: 'another webhook configuration named', spec: { webhookConfigurations: ['other.example.com'] }, total: 0 },
    { name: 'this webhook configuration named', spec: { webhookConfigurations: ['hook.example.com'] }, total: 1 },
    { name: 'an APIService of that name is not a webhook configuration', spec: { apiServices: ['hook.example.com'] }, total: 0 },
    { name: 'another namespace', spec: { namespaces: ['kube-system'] }, total: 0 },
    { name: 'a label selector the Secret does not match', spec: { selector: { matchLabels: { team: 'a' } } }, total: 0 },
    { name: 'a label selector the Secret matches', spec: { selector: { matchLabels: { team: 'b' } } }, total: 1 },
    { name: 'a Secret by reference, fronted by nothing', spec: { secretRefs: [{ namespace: 'web', name: 'spare-tls' }] }, total: 1 },
  ])('scope: $name', ({ spec, total }) => {
    const w = world([front('hook.example.com', ca.certPem)], [secret('hook-tls', tlsPair(leaf), { labels: { team: 'b' } }), secret('hook-ca', tlsPair(ca)), secret('spare-tls', tlsPair(leaf))]);
    expect(discoverSecretTargets(w, spec).plan.total).toBe(total);
  });

  it('a front that calls into a namespace outside spec.secrets.namespaces is neither a target nor unresolved', () => {
    const w = world([front('hook.example.com', ca.certPem), { ...front('elsewhere.example.com', ca.certPem), service: { namespace: 'other', name: 'x' } }], [secret('hook-tls', tlsPair(leaf)), secret('hook-ca', tlsPair(ca))]);
    const r = discoverSecretTargets(w, { namespaces: ['web'] });
    expect(r.plan.total).toBe(1);
    expect(r.unresolved).toEqual([]);
    expect(discoverSecretTargets(w, {}).unresolved).toEqual([{ front: 'ValidatingWebhookConfiguration/elsewhere.example.com', reason: 'it calls Service other/x, which does not exist' }]);
  });

  it('a named front or Secret that is missing is reported; an unnamed one is not', () => {
    const w = world([], [secret('hook-ca', tlsPair(ca))]);
    expect(discoverSecretTargets(w, { secretRefs: [{ namespace: 'web', name: 'gone' }], builtIn: ['rancher-webhook'] }).unresolved).toEqual([
      { front: 'Secret/web/gone', reason: 'named in spec.secrets.secretRefs but not found' },
      { front: 'builtIn/rancher-webhook', reason: 'Secret cattle-system/cattle-webhook-tls not found' },
    ]);
    expect(discoverSecretTargets(w, {}).unresolved).toEqual([]);
  });

  it(`lists at most ${MAX_LISTED_SECRET_TARGETS} targets, the earliest to expire first, and counts them all`, () => {
    const n = MAX_LISTED_SECRET_TARGETS + 20;
    const secrets = Array.from({ length: n }, (_, i) => secret(`s${String(i).padStart(3, '0')}`, tlsPair(leaf)));
    secrets.push(secret('expired', tlsPair(leafOfExpiredCa)));
    const r = discoverSecretTargets({ ...world([], secrets), fronts: [] }, { secretRefs: secrets.map((s) => ({ namespace: 'web', name: s.name })) });
    expect(r.plan.total).toBe(n + 1);
    expect(r.plan.targets).toHaveLength(MAX_LISTED_SECRET_TARGETS);
    expect(r.plan.targets[0]!.secret.name).toBe('expired');
    expect(r.plan.cannotRenew).toBe(n + 1); // no CA Secret with a key for any of them
  });
});
