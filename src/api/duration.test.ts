import { describe, expect, it } from '@jest/globals';
import { DURATION_PATTERN, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['10m', 600_000],
    ['90s', 90_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['1500us', 1.5],
    ['0s', 0],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '10', '10 minutes', '-5m', '1d', 'm', '5m ', '1.m'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });

  it('uses the same pattern the CRD uses, with no backslash to escape inside CEL', () => {
    expect(DURATION_PATTERN).not.toContain('\\');
    expect(new RegExp(DURATION_PATTERN).test('1h30m')).toBe(true);
  });
});
