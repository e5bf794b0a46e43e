// Strict PEM: a renewal reads a file it is about to replace, so anything it does
// not fully understand is an error naming the file, never a best guess.
import { CertificateFileError } from './errors.js';

export interface PemBlock {
  readonly type: string;
  readonly der: Buffer;
}

const BEGIN_LINE = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END_LINE = /^-----END ([A-Z0-9 ]+)-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

// One pass over the lines, each looked at a bounded number of times: a file of
// many BEGIN lines and no END (hostile or corrupt) costs as much as its length,
// never its square (a backtracking regex over the whole text would).
export function parsePem(text: string, file: string): PemBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  let outside = false; // non-blank data seen outside a block and not yet reported
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    const begin = BEGIN_LINE.exec(line);
    if (!begin) {
      if (line.trim() !== '') outside = true;
      i++;
      continue;
    }
    let j = i + 1;
    while (j < lines.length && !lines[j]!.startsWith('-----END ') && !lines[j]!.startsWith('-----BEGIN ')) j++;
    const end = j < lines.length ? END_LINE.exec(lines[j]!) : null;
    if (!end) {
      throw new CertificateFileError(file, blocks.length ? 'corrupt PEM: unexpected or truncated data after the last block' : 'corrupt PEM: a block is not terminated (truncated file?)');
    }
    if (outside) throw new CertificateFileError(file, 'unexpected data outside PEM blocks');
    const type = begin[1]!;
    if (type !== end[1]) throw new CertificateFileError(file, `PEM block BEGIN ${type} ends with END ${end[1]}`);
    const body = lines.slice(i + 1, j).filter((l) => l !== '');
    if (body.some((l) => l.includes(':'))) throw new CertificateFileError(file, `encrypted or annotated PEM (${type}) is not supported`);
    const b64 = body.join('');
    if (b64 === '' || !body.every((l) => BASE64_LINE.test(l)) || b64.length % 4 !== 0) {
      throw new CertificateFileError(file, `corrupt PEM: invalid base64 in ${type} block`);
    }
    const der = Buffer.from(b64, 'base64');
    if (der.toString('base64') !== b64) throw new CertificateFileError(file, `corrupt PEM: invalid base64 in ${type} block`);
    blocks.push({ type, der });
    i = j + 1;
  }
  if (outside && blocks.length) throw new CertificateFileError(file, 'corrupt PEM: unexpected or truncated data after the last block');
  if (blocks.length === 0) throw new CertificateFileError(file, 'no PEM block found');
  return blocks;
}

// Go's pem.Encode layout: 64-column base64, LF line ends.
export function encodePem(type: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}
