// Just enough DER to copy a certificate's fields byte for byte: slice a structure
// into its TLVs and wrap bytes in a new TLV. Strict: definite, minimal lengths,
// single-byte tags, every byte accounted for. It only ever reads certificates that
// OpenSSL has already parsed (node's X509Certificate) and whose signature has been
// checked; anything unexpected is still an error, never a best guess.

export interface Tlv {
  readonly tag: number;
  // Offsets into the buffer the TLV was read from: [start, contentStart) is the header.
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export class DerError extends Error {}

export function readTlv(buf: Uint8Array, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError(`truncated TLV at ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at ${offset}`);
  let length = buf[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0) throw new DerError(`indefinite length at ${offset}`);
    if (n > 4) throw new DerError(`length of ${n} bytes at ${offset}`);
    if (contentStart + n > limit) throw new DerError(`truncated length at ${offset}`);
    if (buf[contentStart] === 0) throw new DerError(`non-minimal length at ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[contentStart + i]!;
    if (length < 0x80) throw new DerError(`non-minimal length at ${offset}`);
    contentStart += n;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError(`TLV at ${offset} runs past its container`);
  return { tag, start: offset, contentStart, end };
}

// The TLVs inside a constructed TLV, which they must fill exactly.
export function childrenOf(buf: Uint8Array, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new DerError(`primitive tag 0x${parent.tag.toString(16)} has no children`);
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const child = readTlv(buf, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

// The single TLV that is the whole buffer.
export function readWhole(buf: Uint8Array): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.end !== buf.length) throw new DerError(`${buf.length - tlv.end} bytes after the outer TLV`);
  return tlv;
}

export const bytesOf = (buf: Uint8Array, tlv: Tlv): Uint8Array => buf.subarray(tlv.start, tlv.end);
export const contentOf = (buf: Uint8Array, tlv: Tlv): Uint8Array => buf.subarray(tlv.contentStart, tlv.end);

function header(tag: number, length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(tag, length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(tag, 0x80 | bytes.length, ...bytes);
}

// One TLV around the concatenated parts.
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  return Buffer.concat([header(tag, length), ...parts]);
}

// A non-negative INTEGER from big-endian magnitude bytes, minimally encoded.
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return tlv(TAG.INTEGER, Uint8Array.of(0));
  return m[0]! & 0x80 ? tlv(TAG.INTEGER, Uint8Array.of(0), m) : tlv(TAG.INTEGER, m);
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  // [n] EXPLICIT (constructed) and [n] IMPLICIT primitive, context class.
  explicit: (n: number) => 0xa0 | n,
  implicit: (n: number) => 0x80 | n,
} as const;
