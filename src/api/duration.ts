// Durations are written the Go way (`10m`, `1h30m`, `90s`), as kubectl, Flux
// and every Kubernetes API user already writes them. The same pattern is used
// by the CRD's CEL rule (so the API server refuses what we could not parse)
// and by parseDuration (so the controller reads exactly what was admitted).

/** Go time.ParseDuration syntax without a sign: one or more number+unit pairs. */
// No backslashes (they would need a second escape inside the CEL string) and no
// `µs` (ASCII only; `us` means the same).
export const DURATION_PATTERN = '^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const WHOLE = new RegExp(DURATION_PATTERN);
const PART = /([0-9]+(?:[.][0-9]+)?)(ns|us|ms|s|m|h)/g;

/** Milliseconds in a Go-style duration string; throws on anything else. */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) {
    throw new Error(`"${text}" is not a duration; write it like 10m, 90s or 1h30m`);
  }
  let total = 0;
  for (const match of text.matchAll(PART)) {
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  return total;
}
