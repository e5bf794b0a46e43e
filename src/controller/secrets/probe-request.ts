// The second half of verifying a Secret-backed renewal (issue 13 §6): a request
// the API server itself sends through the front, so its own TLS client, with the
// front's caBundle, is the judge. Chosen here, as a pure function over the live
// front; target-steps.ts sends it at the Verify step.
//
//   - APIService: GET /apis/<group>/<version>. The aggregator proxies it to the
//     Service; any answer from there means the TLS handshake passed.
//   - Admission webhook: a server-side dry-run create of a ConfigMap, when a
//     rule of the webhook covers it, in a namespace its namespaceSelector
//     matches, with labels its objectSelector matches. A dry run persists
//     nothing, and the API server only sends it to webhooks that declare no
//     side effects. Anything else is refused with the reason, not guessed:
//       * failurePolicy Ignore: a failed call lets the request through, so its
//         success would prove nothing;
//       * sideEffects Unknown/Some: the API server refuses the dry run;
//       * matchConditions (CEL) and objectSelector expressions: not evaluated here;
//       * rules without ConfigMap CREATE: no object certrotator can make
//         harmlessly for an arbitrary resource.
//   - CRD conversion webhook: none (a list converts only objects that exist); the
//     served-certificate check (verify-served.ts) is the evidence there.
import { matchesSelector } from '../plan.js';
import type { LabelSelector } from '../../api/common.js';

export interface WebhookRule {
  apiGroups?: string[];
  apiVersions?: string[];
  operations?: string[];
  resources?: string[];
  scope?: string;
}

export interface LiveWebhook {
  name: string;
  rules?: WebhookRule[];
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  failurePolicy?: string;
  sideEffects?: string;
  matchConditions?: unknown[];
}

export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
}

export type ProbeRequest =
  | { kind: 'Get'; path: string }
  | { kind: 'DryRunCreateConfigMap'; namespace: string; labels: Record<string, string> };

export type Probe = { ok: true; request: ProbeRequest } | { ok: false; reason: string };

export function probeForApiService(apiService: { spec?: { group?: string; version?: string } }): Probe {
  const { group, version } = apiService.spec ?? {};
  if (!group || !version) return { ok: false, reason: 'the APIService names no group and version' };
  return { ok: true, request: { kind: 'Get', path: `/apis/${group}/${version}` } };
}

const covers = (list: string[] | undefined, value: string): boolean => (list ?? []).some((x) => x === '*' || x === value);

function coversConfigMapCreate(r: WebhookRule): boolean {
  return covers(r.apiGroups, '') && covers(r.apiVersions, 'v1') && covers(r.operations, 'CREATE') && covers(r.resources, 'configmaps') && (r.scope === undefined || r.scope === '*' || r.scope === 'Namespaced');
}

export function probeForWebhook(webhook: LiveWebhook, namespaces: readonly NamespaceInfo[]): Probe {
  const no = (why: string): Probe => ({ ok: false, reason: `webhook ${webhook.name}: ${why}` });
  if ((webhook.failurePolicy ?? 'Fail') === 'Ignore') return no('its failurePolicy is Ignore, so a request that passes proves nothing about the call');
  if (!['None', 'NoneOnDryRun'].includes(webhook.sideEffects ?? '')) return no(`its sideEffects is ${webhook.sideEffects ?? 'unset'}: the API server refuses dry-run requests it would send there`);
  if ((webhook.matchConditions ?? []).length > 0) return no('it has matchConditions (CEL), which certrotator does not evaluate');
  if (!(webhook.rules ?? []).some(coversConfigMapCreate)) return no('no rule covers CREATE of v1 ConfigMaps, the one request certrotator sends as a dry run');
  const objectSelector = webhook.objectSelector ?? {};
  if ((objectSelector.matchExpressions ?? []).length > 0) return no('its objectSelector has matchExpressions, which certrotator does not satisfy by construction');
  // Sorted, so the same cluster gives the same request (the run's status can name it).
  const ns = [...namespaces].sort((a, b) => a.name.localeCompare(b.name)).find((n) => matchesSelector(n.labels, webhook.namespaceSelector));
  if (!ns) return no('no namespace matches its namespaceSelector');
  return { ok: true, request: { kind: 'DryRunCreateConfigMap', namespace: ns.name, labels: { ...(objectSelector.matchLabels ?? {}) } } };
}
