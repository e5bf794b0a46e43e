// Helm installs CRDs only from the chart's crds/ directory; `npm run gen:crds`
// writes the same bytes there and into crds/. This keeps the three equal.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderAllCRDs } from './crds.js';

const REPO = join(process.cwd());
const CHART_CRDS = join(REPO, 'charts', 'certrotator', 'crds');
const CRDS = join(REPO, 'crds');

describe('charts/certrotator/crds', () => {
  it('holds exactly the CRDs of crds/, byte for byte', () => {
    const names = readdirSync(CRDS).filter((n) => n.endsWith('.yaml')).sort();
    expect(readdirSync(CHART_CRDS).sort()).toEqual(names);
    expect(names.length).toBe(2);
    for (const name of names) expect(readFileSync(join(CHART_CRDS, name), 'utf8')).toBe(readFileSync(join(CRDS, name), 'utf8'));
  });

  it('is what gen:crds renders from src/api now', () => {
    for (const [name, text] of Object.entries(renderAllCRDs())) expect(readFileSync(join(CHART_CRDS, name), 'utf8')).toBe(text);
  });
});
