// Schema pieces both resources share: metav1.Condition, metav1.LabelSelector,
// the role string and duration strings.

import { DURATION_PATTERN } from './duration.js';
import { ROLE_STRINGS } from './constants.js';
import { s, type Out } from './schema.js';

/** metav1.Condition, field for field, so generic tooling (kstatus, kubectl wait) reads it. */
export const conditionSchema = s.object({
  type: s.string({
    maxLength: 316,
    pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    description: 'Type of condition in CamelCase, e.g. Ready.',
  }),
  status: s.enum(['True', 'False', 'Unknown'] as const),
  observedGeneration: s.int64({ minimum: 0, description: 'The .metadata.generation the condition was set for.' }).optional(),
  lastTransitionTime: s.time('When the condition last changed from one status to another.'),
  reason: s.string({
    minLength: 1,
    maxLength: 1024,
    pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    description: 'Programmatic CamelCase identifier for the last transition.',
  }),
  message: s.string({ maxLength: 32768, description: 'Human-readable details about the last transition.' }),
});
export type Condition = Out<typeof conditionSchema>;

export const conditionsSchema = s
  .listMap(conditionSchema, 'type', { maxItems: 16 })
  .describe('Latest observations, one per type (a list keyed by type).');

const selectorRequirement = s
  .object({
    key: s.string({ maxLength: 317, description: 'The label key the selector applies to.' }),
    operator: s.enum(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const),
    values: s.array(s.string({ maxLength: 63 }), { maxItems: 64 }).optional(),
  })
  .validate(
    {
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : true",
      message: 'matchExpressions with operator In or NotIn need at least one value',
      fieldPath: '.values',
      reason: 'FieldValueRequired',
    },
    {
      rule: "self.operator in ['Exists', 'DoesNotExist'] ? (!has(self.values) || size(self.values) == 0) : true",
      message: 'matchExpressions with operator Exists or DoesNotExist must not list values',
      fieldPath: '.values',
      reason: 'FieldValueForbidden',
    },
  );

/** metav1.LabelSelector (matchLabels AND matchExpressions). */
export const labelSelectorSchema = s
  .object({
    matchLabels: s.stringMap({ description: 'Labels that must all be present with these values.' }).optional(),
    matchExpressions: s.array(selectorRequirement, { maxItems: 32 }).optional(),
  })
  .with({ 'x-kubernetes-map-type': 'atomic' });
export type LabelSelector = Out<typeof labelSelectorSchema>;

/** A node's roles, comma-joined in the fixed order etcd, controlplane, worker. */
export const roleSchema = s.enum(ROLE_STRINGS as readonly string[]);

/**
 * A Go-style duration (10m, 90s, 1h30m) between 1s and 24h. CEL, not an
 * OpenAPI pattern, so the rejection says what to write instead of printing a
 * regular expression.
 */
export function durationSchema(field: string, description: string) {
  return s
    .string({ maxLength: 32, description })
    .validate(
      {
        rule: `self.matches('${DURATION_PATTERN}')`,
        message: `${field} must be a duration such as 10m, 90s or 1h30m`,
      },
      {
        // `&&` short-circuits, so duration() only sees strings that parse.
        rule: `!self.matches('${DURATION_PATTERN}') || (duration(self) >= duration('1s') && duration(self) <= duration('24h'))`,
        message: `${field} must be between 1s and 24h`,
      },
    );
}
