// Strict PEM: a renewal reads a file it is about to replace, so anything it does
// not fully understand is an error naming the file, never a best guess.
import { CertificateFileError } from './errors.js';

export interface PemBlock {
  readonly type: string;
  readonly der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----\r?\n?/g;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

export function parsePem(text: string, file: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let last = 0;
  for (const m of text.matchAll(BLOCK)) {
    if (text.slice(last, m.index).trim() !== '') {
      throw new CertificateFileError(file, 'unexpected data outside PEM blocks');
    }
    const [, begin, body, end] = m as unknown as [string, string, string, string];
    if (begin !== end) throw new CertificateFileError(file, `PEM block BEGIN ${begin} ends with END ${end}`);
    const lines = body.split(/\r?\n/).filter((l) => l !== '');
    if (lines.some((l) => l.includes(':'))) throw new CertificateFileError(file, `encrypted or annotated PEM (${begin}) is not supported`);
    const b64 = lines.join('');
    if (b64 === '' || !lines.every((l) => BASE64_LINE.test(l)) || b64.length % 4 !== 0) {
      throw new CertificateFileError(file, `corrupt PEM: invalid base64 in ${begin} block`);
    }
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64) throw new CertificateFileError(file, `corrupt PEM: invalid base64 in ${begin} block`);
    blocks.push({ type: begin, der });
    last = (m.index ?? 0) + m[0].length;
  }
  if (blocks.length === 0 && text.includes('-----BEGIN ')) {
    throw new CertificateFileError(file, 'corrupt PEM: a block is not terminated (truncated file?)');
  }
  if (text.slice(last).trim() !== '') {
    throw new CertificateFileError(file, blocks.length ? 'corrupt PEM: unexpected or truncated data after the last block' : 'no PEM block found');
  }
  if (blocks.length === 0) throw new CertificateFileError(file, 'no PEM block found');
  return blocks;
}

// Go's pem.Encode layout: 64-column base64, LF line ends.
export function encodePem(type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}
