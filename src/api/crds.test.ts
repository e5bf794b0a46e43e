import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { DISTRIBUTIONS, SERVICES_BY_DISTRIBUTION } from '../distributions/services.js';
import {
  CATEGORY,
  CERTIFICATE_ROTATION,
  FAILURE_POLICIES,
  GROUP,
  MODES,
  NODE_PHASES,
  NODE_ROTATION,
  NODE_STEPS,
  ROLE_STRINGS,
  ROTATION_PHASES,
  VERSION,
} from './constants.js';
import { renderAllCRDs, type CustomResourceDefinition } from './crds.js';
import { ROTATION_SCOPES } from './certificaterotation.js';
import type { CelRule, OpenAPISchema } from './schema.js';

const CRDS_DIR = join(process.cwd(), 'crds');

function committed(name: string): CustomResourceDefinition {
  return parse(readFileSync(join(CRDS_DIR, name), 'utf8')) as CustomResourceDefinition;
}
const crotFile = `${CERTIFICATE_ROTATION.plural}.${GROUP}.yaml`;
const nrotFile = `${NODE_ROTATION.plural}.${GROUP}.yaml`;
const crot = committed(crotFile);
const nrot = committed(nrotFile);
const crotRoot = crot.spec.versions[0]!.schema.openAPIV3Schema;
const nrotRoot = nrot.spec.versions[0]!.schema.openAPIV3Schema;

function at(root: OpenAPISchema, path: string): OpenAPISchema {
  let node = root;
  for (const part of path.split('.')) {
    const next = part === '[]' ? node.items : node.properties?.[part];
    if (!next) throw new Error(`no schema at ${path} (stopped at ${part})`);
    node = next;
  }
  return node;
}

function allRules(node: OpenAPISchema, out: CelRule[] = []): CelRule[] {
  out.push(...(node['x-kubernetes-validations'] ?? []));
  for (const child of Object.values(node.properties ?? {})) allRules(child, out);
  if (node.items) allRules(node.items, out);
  if (node.additionalProperties) allRules(node.additionalProperties, out);
  return out;
}

function walk(node: OpenAPISchema, visit: (n: OpenAPISchema, path: string) => void, path = ''): void {
  visit(node, path);
  for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, visit, `${path}.${k}`);
  if (node.items) walk(node.items, visit, `${path}[]`);
  if (node.additionalProperties) walk(node.additionalProperties, visit, `${path}{}`);
}

describe('committed CRD YAML', () => {
  it.each(Object.entries(renderAllCRDs()))('%s is what `npm run gen:crds` renders (not stale)', (name, text) => {
    expect(readFileSync(join(CRDS_DIR, name), 'utf8')).toBe(text);
  });

  it('names, scope, short names and category are as design.md §1.1 says', () => {
    expect(crot.metadata.name).toBe('certificaterotations.certrotator.io');
    expect(crot.spec.group).toBe(GROUP);
    expect(crot.spec.scope).toBe('Cluster');
    expect(crot.spec.names.shortNames).toEqual(['certrotation', 'certrotations', 'crot']);
    expect(crot.spec.names.categories).toEqual([CATEGORY]);
    expect(nrot.spec.scope).toBe('Cluster');
    for (const doc of [crot, nrot]) {
      expect(doc.spec.versions.map((v) => v.name)).toEqual([VERSION]);
      expect(doc.spec.versions[0]!.subresources).toEqual({ status: {} });
    }
  });

  it('CertificateRotation printer columns are exactly Scope, Service, Phase, Progress, Current, Age; wide Distribution, Message', () => {
    const cols = crot.spec.versions[0]!.additionalPrinterColumns;
    expect(cols.filter((c) => !c.priority).map((c) => c.name)).toEqual(['Scope', 'Service', 'Phase', 'Progress', 'Current', 'Age']);
    expect(cols.filter((c) => c.priority === 1).map((c) => c.name)).toEqual(['Distribution', 'Message']);
    expect(cols.find((c) => c.name === 'Message')!.jsonPath).toBe('.status.conditions[?(@.type=="Ready")].message');
  });

  it('NodeRotation printer columns start with Node, Role, Phase, Age', () => {
    const cols = nrot.spec.versions[0]!.additionalPrinterColumns;
    expect(cols.filter((c) => !c.priority).map((c) => c.name)).toEqual(['Node', 'Role', 'Phase', 'Age']);
  });

  it('enums in the YAML equal the TypeScript constants', () => {
    expect(at(crotRoot, 'spec.distribution').enum).toEqual([...DISTRIBUTIONS]);
    expect(at(crotRoot, 'spec.scope').enum).toEqual([...ROTATION_SCOPES]);
    expect(at(crotRoot, 'spec.mode').enum).toEqual([...MODES]);
    expect(at(crotRoot, 'spec.strategy.onFailure').enum).toEqual([...FAILURE_POLICIES]);
    expect(at(crotRoot, 'status.phase').enum).toEqual([...ROTATION_PHASES]);
    expect(at(crotRoot, 'status.nodes.[].phase').enum).toEqual([...NODE_PHASES]);
    expect(at(crotRoot, 'status.nodes.[].role').enum).toEqual([...ROLE_STRINGS]);
    expect(at(nrotRoot, 'status.phase').enum).toEqual([...NODE_PHASES]);
    expect(at(nrotRoot, 'status.step').enum).toEqual([...NODE_STEPS]);
    expect(at(nrotRoot, 'spec.role').enum).toEqual([...ROLE_STRINGS]);
  });

  it('defaults: scope All, mode Apply, not paused, maxUnavailable 1, nodeTimeout 10m, Rollback, observedGeneration -1', () => {
    expect(at(crotRoot, 'spec').default).toEqual({});
    expect(at(crotRoot, 'spec.scope').default).toBe('All');
    expect(at(crotRoot, 'spec.mode').default).toBe('Apply');
    expect(at(crotRoot, 'spec.paused').default).toBe(false);
    expect(at(crotRoot, 'spec.strategy').default).toEqual({});
    expect(at(crotRoot, 'spec.strategy.maxUnavailable').default).toBe(1);
    expect(at(crotRoot, 'spec.strategy.nodeTimeout').default).toBe('10m');
    expect(at(crotRoot, 'spec.strategy.onFailure').default).toBe('Rollback');
    expect(at(crotRoot, 'status').default).toEqual({ observedGeneration: -1 });
    expect(at(crotRoot, 'status.observedGeneration').default).toBe(-1);
  });

  it('status.nodes is atomic: written whole by the controller, no per-entry managedFields (500 nodes)', () => {
    expect(at(crotRoot, 'status.nodes')['x-kubernetes-list-type']).toBe('atomic');
    expect(at(crotRoot, 'status.nodes')).not.toHaveProperty('x-kubernetes-list-map-keys');
  });

  it('conditions are lists keyed by type, files by path', () => {
    for (const [root, path, key] of [
      [crotRoot, 'status.conditions', 'type'],
      [nrotRoot, 'status.conditions', 'type'],
      [nrotRoot, 'status.files', 'path'],
    ] as const) {
      expect(at(root, path)['x-kubernetes-list-type']).toBe('map');
      expect(at(root, path)['x-kubernetes-list-map-keys']).toEqual([key]);
    }
  });

  it('is structural: every node has a type, nothing preserves unknown fields', () => {
    for (const root of [crotRoot, nrotRoot]) {
      walk(root, (n, path) => {
        expect({ path, type: n.type }).toEqual({ path, type: expect.any(String) });
        expect(n).not.toHaveProperty('x-kubernetes-preserve-unknown-fields');
      });
    }
  });

  it('every CEL rule carries a message a person can read', () => {
    const rules = [...allRules(crotRoot), ...allRules(nrotRoot)];
    expect(rules.length).toBeGreaterThan(8);
    for (const r of rules) expect(r.message?.length ?? 0).toBeGreaterThan(20);
  });

  it('the scope rules name the fix', () => {
    const messages = allRules(at(crotRoot, 'spec')).map((r) => r.message);
    expect(messages).toContain('spec.service is required when spec.scope is Service: name the one service to rotate');
    expect(messages.some((m) => m?.startsWith('spec.service is only allowed with spec.scope: Service'))).toBe(true);
  });

  it.each(DISTRIBUTIONS)('the %s service rule lists exactly the services of services.ts', (d) => {
    const rule = allRules(at(crotRoot, 'spec')).find((r) => r.rule.includes(`self.distribution != '${d}'`));
    expect(rule).toBeDefined();
    const listed = [...rule!.rule.matchAll(/'([a-z0-9-]+)'/g)].map((m) => m[1]).filter((n) => n !== d);
    expect(listed).toEqual([...SERVICES_BY_DISTRIBUTION[d]]);
    expect(rule!.message).toContain(SERVICES_BY_DISTRIBUTION[d].join(', '));
  });

  it('without a distribution, a name must be valid for at least one distribution', () => {
    const rule = allRules(at(crotRoot, 'spec')).find((r) => r.rule.startsWith('has(self.distribution) ||'));
    const listed = new Set([...rule!.rule.matchAll(/'([a-z0-9-]+)'/g)].map((m) => m[1]));
    expect(listed).toEqual(new Set(DISTRIBUTIONS.flatMap((d) => SERVICES_BY_DISTRIBUTION[d])));
  });

  it('the NodeRotation spec is immutable (self == oldSelf)', () => {
    const rules = at(nrotRoot, 'spec')['x-kubernetes-validations'] ?? [];
    expect(rules.find((r) => r.rule === 'self == oldSelf')?.message).toMatch(/immutable/);
  });

  it('nodeTimeout and timeout are validated by CEL with a duration message', () => {
    for (const [root, path] of [
      [crotRoot, 'spec.strategy.nodeTimeout'],
      [nrotRoot, 'spec.timeout'],
    ] as const) {
      const messages = (at(root, path)['x-kubernetes-validations'] ?? []).map((r) => r.message);
      expect(messages.some((m) => m?.includes('must be a duration such as 10m'))).toBe(true);
    }
  });

  it('NodeRotation never has a field for key material in clear: the only keys are X25519 public keys, the pairs are ciphertext', () => {
    const PUBLIC_KEYS = ['.status.sealingKey', '.sealedBundle.recipientKey', '.sealedBundle.senderKey'];
    walk(nrotRoot, (_n, path) => {
      if (!PUBLIC_KEYS.includes(path)) expect(path).not.toMatch(/key(?!s)|pem|private/i);
    });
    const props = (path: string[]) => path.reduce((n, k) => n.properties![k]!, nrotRoot);
    for (const p of PUBLIC_KEYS) expect([p, props(p.slice(1).split('.')).description]).toEqual([p, expect.stringMatching(/public key|sealing/i)]);
    expect(Object.keys(props(['sealedBundle']).properties!).sort()).toEqual(['ciphertext', 'entries', 'nonce', 'recipientKey', 'senderKey']);
  });
});
