// CertificateRotationPolicy: "keep these certificates renewed, inside this
// maintenance window" (issue 12 §3). The policy reads the CertificateInventories
// the agents write, and when something in its scope expires within renewBefore
// and the window is open it creates a CertificateRotation from its template,
// owned by the policy (a GitOps tool that manages the policy does not prune it).
// Window semantics follow system-upgrade-controller and kured: a run only
// starts inside the window; one still running when it closes stops starting
// new nodes (paused) and resumes at the next window.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { DISTRIBUTIONS } from '../distributions/services.js';
import { API_VERSION, CERTIFICATE_ROTATION_POLICY, SCOPES } from './constants.js';
import { scopeRules, serviceRules, strategySchema } from './certificaterotation.js';
import { conditionsSchema } from './common.js';
import { DURATION_PATTERN } from './duration.js';
import { s, type In, type Out } from './schema.js';

export const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** HH:MM, 00:00 to 23:59. */
export const CLOCK_PATTERN = '^([01][0-9]|2[0-3]):[0-5][0-9]$';
/** An IANA zone name's shape (Europe/Berlin, America/Argentina/Buenos_Aires, UTC, Etc/GMT+5); the controller checks that it exists. */
export const TIME_ZONE_PATTERN = '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$';

/**
 * 90 days, as the issue asks: a quarter of RKE2's 365-day leaves. RKE2 (k3s)
 * itself renews a leaf at a service start once it is within
 * config.CertificateRenewDays of expiry: 90 in older k3s releases, 120 in
 * current ones (k3s pkg/daemons/config/types.go).
 */
export const DEFAULT_RENEW_BEFORE = '2160h';

const clock = (field: string, description: string) =>
  s.string({ maxLength: 5, description }).validate({
    rule: `self.matches('${CLOCK_PATTERN}')`,
    message: `${field} must be a time of day HH:MM between 00:00 and 23:59, e.g. 02:00`,
  });

export const windowSchema = s
  .object({
    days: s
      .array(s.enum(WEEKDAYS), { minItems: 1, maxItems: 7 })
      .describe('Days the window opens on (lowercase English names). A window that crosses midnight belongs to the day it opens.')
      .validate({ rule: 'self.all(d, self.exists_one(e, e == d))', message: 'spec.window.days must not name a day twice' })
      .default([...WEEKDAYS]),
    startTime: clock('spec.window.startTime', 'When the window opens, local time in timeZone, HH:MM.'),
    endTime: clock('spec.window.endTime', 'When it closes, HH:MM; earlier than startTime means the next day.'),
    timeZone: s
      .string({ maxLength: 64, description: 'IANA time zone the times are in, e.g. Europe/Berlin. Daylight saving time is followed.' })
      .validate({
        rule: `self.matches('${TIME_ZONE_PATTERN}')`,
        message: 'spec.window.timeZone must be an IANA time zone name such as UTC or Europe/Berlin',
      })
      .default('UTC'),
  })
  .validate({
    rule: 'self.startTime != self.endTime',
    message: 'spec.window.startTime and spec.window.endTime must differ (omit spec.window for "any time")',
    fieldPath: '.endTime',
  });

/** What each created CertificateRotation rotates and how: a CertificateRotation spec without mode and paused (the policy sets those). */
export const templateSchema = s
  .object({
    distribution: s.enum(DISTRIBUTIONS, { description: 'The cluster distribution. Absent: detected from the nodes.' }).optional(),
    scope: s.enum(SCOPES, { description: 'All: every service certificate, same CA. Service: only service.' }).default('All'),
    service: s.string({ maxLength: 63, description: 'The one service when scope is Service.' }).optional(),
    strategy: strategySchema.default({}),
  })
  .validate(...scopeRules('spec.template'), ...serviceRules('spec.template'));

export const certificateRotationPolicySpecSchema = s.object({
  renewBefore: s
    .string({
      maxLength: 32,
      description: `Rotate when a certificate in scope expires within this long. Go duration, e.g. ${DEFAULT_RENEW_BEFORE} (90 days, the default, for RKE2's 365-day leaves).`,
    })
    .validate(
      { rule: `self.matches('${DURATION_PATTERN}')`, message: 'spec.renewBefore must be a duration such as 2160h (90 days) or 720h' },
      {
        rule: `!self.matches('${DURATION_PATTERN}') || (duration(self) > duration('0s') && duration(self) <= duration('87600h'))`,
        message: 'spec.renewBefore must be more than 0 and at most 87600h (10 years)',
      },
    )
    .default(DEFAULT_RENEW_BEFORE),
  template: templateSchema.default({}),
  window: windowSchema.describe('When rotations may start. Absent: any time.').optional(),
  renewExpiredOutsideWindow: s
    .boolean('Rotate a certificate that has already expired at once, even outside the window (the cluster is already broken there).')
    .default(false),
  suspend: s.boolean('Create no rotation, and pause none. Status stays current.').default(false),
  historyLimit: s
    .int32({ minimum: 1, maximum: 100, description: 'Finished rotations of this policy kept; older ones are deleted.' })
    .default(3),
});

const expirySchema = s.object({
  service: s.string({ maxLength: 63 }),
  node: s.string({ maxLength: 253 }),
  notAfter: s.time(),
  path: s.string({ maxLength: 4096 }).optional(),
  endpoint: s.string({ maxLength: 128 }).optional(),
});

export const certificateRotationPolicyStatusSchema = s
  .object({
    observedGeneration: s.int64({ description: 'The spec generation this status describes.' }).default(-1),
    nextExpiry: expirySchema.describe('The certificate in scope that expires first, from the CertificateInventories.').optional(),
    nextRotation: s.time('When the policy will next create a rotation if nothing changes (the due time, inside a window).').optional(),
    nextWindow: s.time('When the window next opens (now, while it is open).').optional(),
    windowOpen: s.boolean('Whether the window is open at the last reconcile.').optional(),
    lastRotation: s
      .object({
        name: s.string({ maxLength: 253 }),
        createdAt: s.time(),
        phase: s.string({ maxLength: 32, description: 'The rotation’s phase when the policy last looked.' }).optional(),
        completedAt: s.time().optional(),
      })
      .optional(),
    conditions: conditionsSchema.optional(),
  })
  .default({ observedGeneration: -1 });

export type CertificateRotationPolicySpec = Out<typeof certificateRotationPolicySpecSchema>;
export type CertificateRotationPolicySpecInput = In<typeof certificateRotationPolicySpecSchema>;
export type CertificateRotationPolicyStatus = Out<typeof certificateRotationPolicyStatusSchema>;
export type MaintenanceWindow = Out<typeof windowSchema>;
export type RotationTemplate = Out<typeof templateSchema>;

export interface CertificateRotationPolicy {
  apiVersion: typeof API_VERSION;
  kind: typeof CERTIFICATE_ROTATION_POLICY.kind;
  metadata: V1ObjectMeta;
  spec: CertificateRotationPolicySpec;
  status?: CertificateRotationPolicyStatus;
}
