// How long the leaves certrotator signs live, decided as the distribution decides
// it. RKE2: rancher/dynamiclistener cert/cert.go NewSignedCert gives 365 days
// unless CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS parses with strconv.Atoi; a value
// that does not parse is logged and 365 kept. rke2 has that variable only from its
// unit's EnvironmentFile= files (catalog serviceEnvironment), so that is where it
// is read — from the host, not from certrotator's own environment.
import type { DistributionCatalog, NodeRole, ValidityProfile } from '../distributions/types.js';
import type { HostRoot } from './root.js';

export interface EnvValue {
  readonly value: string;
  // Host path of the file that set it (the last one wins, as in systemd).
  readonly file: string;
}

export interface ServiceEnv {
  readonly unit: string;
  readonly files: readonly string[];
  readonly values: ReadonlyMap<string, EnvValue>;
}

// systemd EnvironmentFile= syntax, the part real files use: KEY=VALUE lines,
// `#`/`;` comments, blank lines, surrounding whitespace dropped, one pair of
// matching quotes removed.
export function parseEnvironmentFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    out.set(key, value);
  }
  return out;
}

export async function readServiceEnvironment(catalog: DistributionCatalog, host: HostRoot, roles: readonly NodeRole[]): Promise<ServiceEnv | undefined> {
  const entry = catalog.serviceEnvironment?.find((e) => e.whenRoleIn.some((r) => roles.includes(r)));
  if (!entry) return undefined;
  const values = new Map<string, EnvValue>();
  for (const file of entry.files) {
    if (!(await host.exists(file))) continue;
    for (const [k, value] of parseEnvironmentFile((await host.readFile(file)).toString('utf8'))) values.set(k, { value, file });
  }
  return { unit: entry.unit, files: entry.files, values };
}

export interface EffectiveValidity {
  readonly profile: ValidityProfile;
  // For the report: how many days and why, e.g.
  // "730d from CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS in /etc/default/rke2-server".
  readonly description: string;
  // Set when the variable is there but rke2 ignores it.
  readonly warning?: string;
}

export class ValidityError extends Error {}

// Go's strconv.Atoi: an optional sign and decimal digits, nothing else, within int64.
function atoi(s: string): number | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function effectiveValidity(profile: ValidityProfile, env: ServiceEnv | undefined): EffectiveValidity {
  const name = profile.daysFromEnv;
  if (!name) return { profile, description: `${profile.days}d` };
  const where = env ? `${env.unit}'s environment (${env.files.map((f) => `/${f}`).join(', ')})` : 'the service environment';
  const set = env?.values.get(name);
  if (!set) return { profile, description: `${profile.days}d (default; ${name} not set in ${where})` };
  const days = atoi(set.value);
  if (days === undefined) {
    const warning = `${name}=${JSON.stringify(set.value)} in /${set.file} is not an integer; rke2 ignores it and keeps ${profile.days} days (rancher/dynamiclistener cert/cert.go NewSignedCert), so does certrotator`;
    return { profile, description: `${profile.days}d (default; ${name} in /${set.file} is not an integer)`, warning };
  }
  // Upstream has no bound: 0 or less makes a leaf that expires as it is issued.
  // Installing one would take the cluster down, so this is refused, not copied.
  if (days <= 0) throw new ValidityError(`${name}=${set.value} in /${set.file}: rke2 would sign leaves that expire as they are issued; refusing to sign with it (fix the value first)`);
  return { profile: { ...profile, days }, description: `${days}d from ${name} in /${set.file}` };
}
