import { describe, expect, it } from '@jest/globals';
import { LABELS } from './constants.js';
import { labelValue, nodeRotationLabels, nodeRotationName, runID } from './names.js';

describe('nodeRotationName', () => {
  it('is <rotation>-g<generation>-<node>-<hash> when it fits', () => {
    expect(nodeRotationName('rotate-all', 3, 'server-1')).toMatch(/^rotate-all-g3-server-1-[0-9a-f]{10}$/);
  });

  it('is distinct where the readable part is not: rotation a + node g1-x, rotation a-g1 + node x', () => {
    expect(nodeRotationName('a', 1, 'g1-x')).not.toBe(nodeRotationName('a-g1', 1, 'x'));
    expect(nodeRotationName('a', 1, 'g1-x').startsWith('a-g1-g1-x-')).toBe(true);
    expect(nodeRotationName('a-g1', 1, 'x').startsWith('a-g1-g1-x-')).toBe(true);
  });

  it('is deterministic and at most 253 characters, and distinct for distinct long inputs', () => {
    const node = `${'n'.repeat(240)}.example.com`;
    const a = nodeRotationName('rotate-all', 1, node);
    expect(a).toBe(nodeRotationName('rotate-all', 1, node));
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(nodeRotationName('rotate-all', 2, node)).not.toBe(a);
  });
});

describe('labels', () => {
  it('keeps short valid values and hashes long ones to 63 characters', () => {
    expect(labelValue('worker-1')).toBe('worker-1');
    const long = labelValue(`${'w'.repeat(100)}.example.com`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
  });

  it('labels a NodeRotation with rotation, generation and node', () => {
    expect(nodeRotationLabels('r', 2, 'n1')).toEqual({ [LABELS.rotation]: 'r', [LABELS.generation]: '2', [LABELS.node]: 'n1' });
  });

  it('runID changes with the generation and the rotation UID', () => {
    expect(runID('uid-a', 1)).not.toBe(runID('uid-a', 2));
    expect(runID('uid-a', 1)).not.toBe(runID('uid-b', 1));
  });
});
