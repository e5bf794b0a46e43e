import { describe, expect, test } from '@jest/globals';
import { DerError, TAG, childrenOf, readTlv, readWhole, tlv, unsignedInteger } from './der.js';

const hex = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');

describe('readTlv', () => {
  test('short and long definite lengths', () => {
    expect(readTlv(hex('04 02 aa bb'), 0)).toEqual({ tag: 4, start: 0, contentStart: 2, end: 4 });
    const long = Buffer.concat([hex('04 81 80'), Buffer.alloc(0x80)]);
    expect(readTlv(long, 0)).toEqual({ tag: 4, start: 0, contentStart: 3, end: 3 + 0x80 });
    const longer = Buffer.concat([hex('30 82 01 00'), Buffer.alloc(0x100)]);
    expect(readTlv(longer, 0).end).toBe(4 + 0x100);
  });
  test.each([
    ['indefinite length', '30 80 00 00'],
    ['non-minimal long form (fits in short form)', '04 81 7f' + '00'.repeat(0x7f)],
    ['leading zero length byte', '04 82 00 80' + '00'.repeat(0x80)],
    ['length past the buffer', '04 05 aa'],
    ['multi-byte tag', '1f 81 01 00'],
    ['truncated header', '04'],
  ])('refuses %s', (_name, h) => {
    expect(() => readTlv(hex(h), 0)).toThrow(DerError);
  });
  test('children must fill their parent exactly', () => {
    const seq = hex('30 06 02 01 01 02 01 02');
    expect(childrenOf(seq, readWhole(seq)).map((c) => c.start)).toEqual([2, 5]);
    const spill = hex('30 05 02 01 01 02 01 02');
    expect(() => childrenOf(spill, readTlv(spill, 0))).toThrow(DerError);
    expect(() => childrenOf(hex('04 01 00'), readWhole(hex('04 01 00')))).toThrow('primitive');
  });
  test('readWhole refuses trailing bytes', () => {
    expect(() => readWhole(hex('05 00 00'))).toThrow('1 bytes after');
  });
});

describe('encoding', () => {
  test('tlv picks the shortest length form', () => {
    expect(tlv(TAG.OCTET_STRING, hex('aabb'))).toEqual(hex('04 02 aa bb'));
    expect(tlv(TAG.OCTET_STRING, Buffer.alloc(0x80)).subarray(0, 3)).toEqual(hex('04 81 80'));
    expect(tlv(TAG.SEQUENCE, Buffer.alloc(0x1234)).subarray(0, 4)).toEqual(hex('30 82 12 34'));
    expect(tlv(TAG.SEQUENCE)).toEqual(hex('30 00'));
  });
  test('unsignedInteger is minimal and never negative', () => {
    expect(unsignedInteger(hex('01'))).toEqual(hex('02 01 01'));
    expect(unsignedInteger(hex('0000 7f'))).toEqual(hex('02 01 7f'));
    // A magnitude with the top bit set needs a zero octet in front, even after stripping.
    expect(unsignedInteger(hex('80'))).toEqual(hex('02 02 00 80'));
    expect(unsignedInteger(hex('00 00 ff 01'))).toEqual(hex('02 03 00 ff 01'));
    expect(unsignedInteger(hex('00'))).toEqual(hex('02 01 00'));
    expect(unsignedInteger(new Uint8Array(0))).toEqual(hex('02 01 00'));
  });
});
