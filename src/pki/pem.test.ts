import { describe, expect, test } from '@jest/globals';
import { encodePem, parsePem } from './pem.js';

const der = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
const good = encodePem('CERTIFICATE', der);

describe('parsePem', () => {
  test('round-trips Go-style PEM (64 columns, LF)', () => {
    expect(good.split('\n')[1]).toHaveLength(64);
    expect(parsePem(good + good, 'f')).toEqual([
      { type: 'CERTIFICATE', der },
      { type: 'CERTIFICATE', der },
    ]);
  });

  test.each([
    ['empty file', '', 'f: no PEM block found'],
    ['text only', 'hello\n', 'f: no PEM block found'],
    ['truncated block', good.slice(0, 60), 'f: corrupt PEM: a block is not terminated (truncated file?)'],
    ['junk after the block', `${good}garbage`, 'f: corrupt PEM: unexpected or truncated data after the last block'],
    ['junk before the block', `garbage\n${good}`, 'f: unexpected data outside PEM blocks'],
    ['invalid base64', good.replace(/\n[A-Za-z0-9+/]{4}/, '\n****'), 'f: corrupt PEM: invalid base64 in CERTIFICATE block'],
    ['mismatched END', good.replace('END CERTIFICATE', 'END PRIVATE KEY'), 'f: PEM block BEGIN CERTIFICATE ends with END PRIVATE KEY'],
    ['encrypted key', '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n', 'f: encrypted or annotated PEM (RSA PRIVATE KEY) is not supported'],
  ])('rejects %s, naming the file', (_name, text, message) => {
    expect(() => parsePem(text, 'f')).toThrow(message);
  });

  test('stays linear on a file of many BEGIN lines and no END (a backtracking parse would take minutes)', () => {
    const hostile = '-----BEGIN CERTIFICATE-----\nAAAA\n'.repeat(40_000); // about 1.3 MB
    const t0 = process.hrtime.bigint();
    expect(() => parsePem(hostile, 'f')).toThrow('f: corrupt PEM: a block is not terminated (truncated file?)');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    // A correctness bound, not a benchmark: quadratic work here is ~10^11 steps.
    expect(ms).toBeLessThan(2000);
  });

  test('CRLF files parse like LF files', () => {
    expect(parsePem(good.replace(/\n/g, '\r\n'), 'f')).toEqual([{ type: 'CERTIFICATE', der }]);
  });
});
