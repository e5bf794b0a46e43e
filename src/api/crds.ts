// The CustomResourceDefinitions, built from the schemas in this folder.
// `npm run gen:crds` writes them to crds/; crds.test.ts fails when the
// committed YAML differs from what this file renders.

import { stringify } from 'yaml';
import { certificateRotationSpecSchema, certificateRotationStatusSchema } from './certificaterotation.js';
import { certificateInventoryStatusSchema } from './certificateinventory.js';
import { certificateRotationPolicySpecSchema, certificateRotationPolicyStatusSchema } from './certificaterotationpolicy.js';
import { CATEGORY, CERTIFICATE_INVENTORY, CERTIFICATE_ROTATION, CERTIFICATE_ROTATION_POLICY, GROUP, NODE_ROTATION, VERSION } from './constants.js';
import { nodeRotationSpecSchema, nodeRotationStatusSchema, sealedBundleSchema } from './noderotation.js';
import { s, type AnySchema, type OpenAPISchema } from './schema.js';

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'boolean' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface Names {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: {
    group: string;
    names: Omit<Names, 'shortNames'> & { shortNames: string[]; categories: string[] };
    scope: 'Cluster';
    versions: {
      name: string;
      served: true;
      storage: true;
      subresources?: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      selectableFields?: { jsonPath: string }[];
      schema: { openAPIV3Schema: OpenAPISchema };
    }[];
  };
}

export const NODE_ROTATION_SELECTABLE_FIELDS = ['.spec.nodeName', '.spec.rotation'];

const READY_MESSAGE = '.status.conditions[?(@.type=="Ready")].message';

export const CERTIFICATE_ROTATION_COLUMNS: PrinterColumn[] = [
  { name: 'Scope', type: 'string', jsonPath: '.spec.scope' },
  { name: 'Service', type: 'string', jsonPath: '.spec.service' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Progress', type: 'string', jsonPath: '.status.progress', description: 'Finished nodes / planned nodes' },
  { name: 'Current', type: 'string', jsonPath: '.status.current', description: 'Node(s) in flight' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  { name: 'Distribution', type: 'string', jsonPath: '.status.distribution', priority: 1 },
  { name: 'Message', type: 'string', jsonPath: READY_MESSAGE, priority: 1 },
];

export const NODE_ROTATION_COLUMNS: PrinterColumn[] = [
  { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
  { name: 'Role', type: 'string', jsonPath: '.spec.role' },
  { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  { name: 'Rotation', type: 'string', jsonPath: '.spec.rotation', priority: 1 },
  { name: 'Step', type: 'string', jsonPath: '.status.step', priority: 1 },
  { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
];

export const CERTIFICATE_INVENTORY_COLUMNS: PrinterColumn[] = [
  { name: 'Roles', type: 'string', jsonPath: '.status.roles' },
  { name: 'Earliest', type: 'string', jsonPath: '.status.earliest.service', description: 'The service whose certificate expires first on the node' },
  { name: 'Expires', type: 'string', jsonPath: '.status.earliest.notAfter' },
  { name: 'Days', type: 'integer', jsonPath: '.status.earliest.daysLeft' },
  { name: 'Expired', type: 'integer', jsonPath: '.status.expired' },
  { name: 'Errors', type: 'integer', jsonPath: '.status.errors' },
  { name: 'Scanned', type: 'date', jsonPath: '.status.scannedAt' },
  { name: 'Path', type: 'string', jsonPath: '.status.earliest.path', priority: 1 },
  { name: 'Endpoint', type: 'string', jsonPath: '.status.earliest.endpoint', priority: 1 },
  { name: 'Stale', type: 'string', jsonPath: '.status.staleEndpoints', priority: 1, description: 'Endpoints serving a certificate that is none of their files on disk' },
];

export const CERTIFICATE_ROTATION_POLICY_COLUMNS: PrinterColumn[] = [
  { name: 'Renew-Before', type: 'string', jsonPath: '.spec.renewBefore' },
  { name: 'Next-Expiry', type: 'string', jsonPath: '.status.nextExpiry.notAfter', description: 'The certificate in scope that expires first' },
  { name: 'Next-Window', type: 'string', jsonPath: '.status.nextWindow', description: 'When the maintenance window next opens' },
  { name: 'Last', type: 'string', jsonPath: '.status.lastRotation.name', description: 'The last CertificateRotation the policy created' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  { name: 'Service', type: 'string', jsonPath: '.status.nextExpiry.service', priority: 1 },
  { name: 'Node', type: 'string', jsonPath: '.status.nextExpiry.node', priority: 1 },
  { name: 'Last-Phase', type: 'string', jsonPath: '.status.lastRotation.phase', priority: 1 },
  { name: 'Message', type: 'string', jsonPath: READY_MESSAGE, priority: 1 },
];

function rootSchema(spec: AnySchema | undefined, status: AnySchema, description: string, extra: Record<string, AnySchema> = {}): OpenAPISchema {
  // apiVersion/kind/metadata are validated by the API server itself; the
  // schema only declares them (metadata must be a bare `type: object`).
  const root = s
    .object({
      apiVersion: s.string().optional(),
      kind: s.string().optional(),
      metadata: s.object({}).optional(),
      ...(spec ? { spec } : {}),
      ...extra,
      status,
    })
    .describe(description).openAPI;
  return { ...root, properties: { ...root.properties, metadata: { type: 'object' } } };
}

function crd(
  names: Names,
  columns: PrinterColumn[],
  schema: OpenAPISchema,
  selectableFields: string[] = [],
  statusSubresource = true,
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
        categories: [CATEGORY],
      },
      scope: 'Cluster',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          ...(statusSubresource ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: columns,
          ...(selectableFields.length > 0 ? { selectableFields: selectableFields.map((jsonPath) => ({ jsonPath })) } : {}),
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

export function certificateRotationCRD(): CustomResourceDefinition {
  return crd(
    CERTIFICATE_ROTATION,
    CERTIFICATE_ROTATION_COLUMNS,
    rootSchema(
      // An object with no spec rotates every service, distribution detected.
      certificateRotationSpecSchema.default({}),
      certificateRotationStatusSchema,
      'CertificateRotation rotates the certificates of the cluster’s own components, node by node. One spec generation is one run.',
    ),
  );
}

export function nodeRotationCRD(): CustomResourceDefinition {
  return crd(
    NODE_ROTATION,
    NODE_ROTATION_COLUMNS,
    rootSchema(
      nodeRotationSpecSchema,
      nodeRotationStatusSchema,
      'NodeRotation is the controller’s instruction to one node for one run, and that node’s report. Created by the controller; no key material in clear (an RKE run’s sealedBundle opens only for the agent whose sealingKey it names).',
      { sealedBundle: sealedBundleSchema.optional() },
    ),
    // An agent lists and watches only its own node's instructions with a field
    // selector (spec.nodeName=<node>); labels would need hashing for long node names.
    NODE_ROTATION_SELECTABLE_FIELDS,
  );
}

export function certificateInventoryCRD(): CustomResourceDefinition {
  return crd(
    CERTIFICATE_INVENTORY,
    CERTIFICATE_INVENTORY_COLUMNS,
    rootSchema(
      undefined,
      certificateInventoryStatusSchema.optional(),
      'CertificateInventory is one node’s certificates as its agent last read them (files and what endpoints serve): the earliest expiry per service. Named after the node; written whole by that node’s agent (no status subresource: one write per change).',
    ),
    [],
    false,
  );
}

export function certificateRotationPolicyCRD(): CustomResourceDefinition {
  return crd(
    CERTIFICATE_ROTATION_POLICY,
    CERTIFICATE_ROTATION_POLICY_COLUMNS,
    rootSchema(
      certificateRotationPolicySpecSchema.default({}),
      certificateRotationPolicyStatusSchema,
      'CertificateRotationPolicy creates a CertificateRotation (owned by it) when a certificate in scope expires within renewBefore, only inside its maintenance window.',
    ),
  );
}

const HEADER = '# Generated by `npm run gen:crds` from src/api/*.ts. Do not edit: change the TypeScript and regenerate.\n';

export function renderCRD(doc: CustomResourceDefinition): string {
  return HEADER + stringify(doc, { lineWidth: 0 });
}

/** File name under crds/ → YAML text. */
export function renderAllCRDs(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const doc of [certificateRotationCRD(), nodeRotationCRD(), certificateInventoryCRD(), certificateRotationPolicyCRD()]) {
    out[`${doc.metadata.name}.yaml`] = renderCRD(doc);
  }
  return out;
}
