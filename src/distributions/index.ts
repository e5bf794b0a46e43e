import { rke2Catalog } from './rke2/catalog.js';
import { rkeCatalog } from './rke/catalog.js';
import { SERVICES_BY_DISTRIBUTION, type Distribution } from './services.js';
import type { CertFile, DistributionCatalog } from './types.js';

export * from './types.js';
export { rke2Catalog, rkeCatalog };

const CATALOGS: Record<Distribution, DistributionCatalog> = { rke2: rke2Catalog, rke: rkeCatalog };

export function catalogFor(distribution: Distribution): DistributionCatalog {
  return CATALOGS[distribution];
}

// Every service name the catalog knows must be a valid CRD service name and vice
// versa; checked by the catalog test so the two lists cannot drift.
export function catalogServiceNames(catalog: DistributionCatalog): string[] {
  return SERVICES_BY_DISTRIBUTION[catalog.distribution].filter((s) => s in catalog.services);
}

// Replaces {dataDir} etc. in a catalog path.
export function fillPath(path: string, vars: Readonly<Record<string, string>>): string {
  return path.replace(/\{(\w+)\}/g, (whole, name: string) => vars[name] ?? whole);
}

/** A path template as a pattern for the paths it stands for: each placeholder matches any text within one path segment (RKE's per-host names). */
export function templatePattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`);
}

export function allFiles(catalog: DistributionCatalog): CertFile[] {
  return [...Object.values(catalog.services).flatMap((s) => s.files), ...catalog.allOnlyFiles];
}
