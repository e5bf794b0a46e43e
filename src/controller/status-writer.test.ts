import { describe, expect, it } from '@jest/globals';
import { canonical, statusEqual } from './status-writer.js';

describe('statusEqual (skip writes that change nothing)', () => {
  it.each<[string, object, object, boolean]>([
    ['key order does not matter', { observedGeneration: 1, phase: 'Progressing' }, { phase: 'Progressing', observedGeneration: 1 }, true],
    ['undefined fields do not matter', { observedGeneration: 1, current: undefined }, { observedGeneration: 1 }, true],
    ['a node phase matters', { observedGeneration: 1, nodes: [{ name: 'a', role: 'worker', phase: 'Pending' }] }, { observedGeneration: 1, nodes: [{ name: 'a', role: 'worker', phase: 'Updating' }] }, false],
    ['list order matters', { observedGeneration: 1, nodes: [{ name: 'a' }, { name: 'b' }] }, { observedGeneration: 1, nodes: [{ name: 'b' }, { name: 'a' }] }, false],
  ])('%s', (_n, a, b, equal) => {
    expect(statusEqual(a as never, b as never)).toBe(equal);
  });

  it('sorts nested keys', () => {
    expect(canonical({ b: { d: 1, c: 2 }, a: 0 })).toBe('{"a":0,"b":{"c":2,"d":1}}');
  });
});
