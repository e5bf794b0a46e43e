import { describe, expect, test } from '@jest/globals';
import { probeForApiService, probeForWebhook, type LiveWebhook, type NamespaceInfo } from './probe-request.js';

const NAMESPACES: NamespaceInfo[] = [
  { name: 'team-b', labels: { 'kubernetes.io/metadata.name': 'team-b', hooked: 'yes' } },
  { name: 'kube-system', labels: { 'kubernetes.io/metadata.name': 'kube-system' } },
  { name: 'team-a', labels: { 'kubernetes.io/metadata.name': 'team-a', hooked: 'yes' } },
];
const CONFIGMAPS = { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] };
const hook = (w: Partial<LiveWebhook>): LiveWebhook => ({ name: 'validate.example.io', rules: [CONFIGMAPS], sideEffects: 'None', ...w });

describe('probeForWebhook', () => {
  const cases: [string, LiveWebhook, object | RegExp][] = [
    ['ConfigMap CREATE, every namespace: the first namespace by name', hook({}), { kind: 'DryRunCreateConfigMap', namespace: 'kube-system', labels: {} }],
    ['a namespaceSelector: a namespace it matches', hook({ namespaceSelector: { matchLabels: { hooked: 'yes' } } }), { kind: 'DryRunCreateConfigMap', namespace: 'team-a', labels: {} }],
    ['an objectSelector with labels: the ConfigMap carries them', hook({ objectSelector: { matchLabels: { probe: 'true' } } }), { kind: 'DryRunCreateConfigMap', namespace: 'kube-system', labels: { probe: 'true' } }],
    ['wildcards in every field', hook({ rules: [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*'], scope: '*' }] }), { kind: 'DryRunCreateConfigMap', namespace: 'kube-system', labels: {} }],
    ['NoneOnDryRun side effects', hook({ sideEffects: 'NoneOnDryRun' }), { kind: 'DryRunCreateConfigMap', namespace: 'kube-system', labels: {} }],
    ['failurePolicy Ignore', hook({ failurePolicy: 'Ignore' }), /failurePolicy is Ignore/],
    ['side effects the API server will not dry-run', hook({ sideEffects: 'Some' }), /sideEffects is Some/],
    ['matchConditions', hook({ matchConditions: [{ name: 'x', expression: 'true' }] }), /matchConditions/],
    ['rules for Pods only', hook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] }), /no rule covers CREATE of v1 ConfigMaps/],
    ['rules for UPDATE only', hook({ rules: [{ ...CONFIGMAPS, operations: ['UPDATE'] }] }), /no rule covers CREATE/],
    ['a cluster-scoped rule', hook({ rules: [{ ...CONFIGMAPS, scope: 'Cluster' }] }), /no rule covers CREATE/],
    ['an objectSelector with expressions', hook({ objectSelector: { matchExpressions: [{ key: 'a', operator: 'Exists' }] } }), /matchExpressions/],
    ['a namespaceSelector that matches no namespace', hook({ namespaceSelector: { matchLabels: { nowhere: 'true' } } }), /no namespace matches/],
  ];
  test.each(cases)('%s', (_name, webhook, want) => {
    const p = probeForWebhook(webhook, NAMESPACES);
    if (want instanceof RegExp) expect(p).toEqual({ ok: false, reason: expect.stringMatching(new RegExp(`^webhook validate\\.example\\.io: .*${want.source}`)) });
    else expect(p).toEqual({ ok: true, request: want });
  });
});

test('probeForApiService: GET the group version the aggregator proxies', () => {
  expect(probeForApiService({ spec: { group: 'metrics.k8s.io', version: 'v1beta1' } })).toEqual({ ok: true, request: { kind: 'Get', path: '/apis/metrics.k8s.io/v1beta1' } });
  expect(probeForApiService({ spec: {} })).toEqual({ ok: false, reason: 'the APIService names no group and version' });
});
