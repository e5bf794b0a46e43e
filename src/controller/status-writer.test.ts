import { describe, expect, it } from '@jest/globals';
import { canonical, compact, jsonEqual, statusEqual } from './status-writer.js';

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

describe('jsonEqual and compact agree with a JSON round trip', () => {
  const values: unknown[] = [
    {},
    { a: 1 },
    { a: 1, b: undefined },
    { b: undefined, a: 1 },
    { a: '1' },
    { a: [1, 2] },
    { a: [2, 1] },
    { a: [1, undefined] },
    { a: [1, null] },
    { a: { x: true, y: { z: null } } },
    { a: { y: { z: null }, x: true } },
    { a: { x: true, y: { z: undefined } } },
    { a: { x: true, y: {} } },
    { a: new Date('2026-09-01T10:00:00Z') },
    { a: '2026-09-01T10:00:00.000Z' },
    { a: new Date('2026-09-01T10:00:01Z') },
    { nodes: [{ name: 'a', phase: 'Pending' }] },
    { nodes: [{ name: 'a', phase: 'Pending', message: undefined }] },
    { nodes: [{ phase: 'Pending', name: 'a' }] },
    { nodes: [{ name: 'a', phase: 'Updating' }] },
    { nodes: [] },
  ];
  it('jsonEqual(a, b) is canonical(a) === canonical(b) for every pair', () => {
    for (const a of values) for (const b of values) expect({ a, b, equal: jsonEqual(a, b) }).toEqual({ a, b, equal: canonical(a) === canonical(b) });
  });
  it('compact is a copy equal to JSON.parse(JSON.stringify(x))', () => {
    for (const v of values) {
      const c = compact(v);
      expect(c).toStrictEqual(JSON.parse(JSON.stringify(v)));
      if (typeof v === 'object' && v !== null) expect(c).not.toBe(v);
    }
  });
});
