// Sealing key material so that only one reader can open it, with node:crypto
// only (no dependency). Two forms:
//
//  - sealTo/openSealed: to a recipient's X25519 public key (an agent's key,
//    made in its memory for one run and never written anywhere). The sender
//    makes a fresh X25519 key per box, so a box reveals nothing but its size;
//    the shared secret goes through HKDF-SHA256 into an AES-256-GCM key.
//  - sealWithSecret/openWithSecret: with a key derived from a secret the
//    reader already holds (the controller and the CA key it signs with).
//
// Both bind a context string (run and node) as HKDF info and as GCM additional
// data: a box made for one node or run does not open as another's.
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

/** An X25519 public key, as the 32 raw bytes in base64url (the JWK `x` member). */
export type SealingPublicKey = string;

export interface SealingKeyPair {
  readonly publicKey: SealingPublicKey;
  /** Never leaves the process that made it. */
  readonly privateKey: KeyObject;
}

/** What a sealed box is made of; every member base64 (of raw bytes) except recipientKey, which is the key it was sealed to. */
export interface SealedBox {
  readonly recipientKey: SealingPublicKey;
  readonly senderKey: SealingPublicKey;
  readonly nonce: string;
  readonly ciphertext: string;
}

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

const GCM_TAG = 16;

export function newSealingKeyPair(): SealingKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: publicKey.export({ format: 'jwk' }).x!, privateKey };
}

function publicKeyOf(x: SealingPublicKey, what: string): KeyObject {
  if (!/^[A-Za-z0-9_-]{43}$/.test(x)) throw new SealError(`${what} is not an X25519 public key (43 base64url characters)`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
}

function aesKey(secret: Buffer, salt: Buffer, context: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, `certrotator seal v1 ${context}`, 32));
}

function encrypt(key: Buffer, plaintext: Buffer, context: string): { nonce: Buffer; ciphertext: Buffer } {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { nonce, ciphertext };
}

function decrypt(key: Buffer, nonce: Buffer, ciphertext: Buffer, context: string): Buffer {
  if (nonce.length !== 12 || ciphertext.length < GCM_TAG) throw new SealError('the sealed box is truncated');
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(Buffer.from(context));
  d.setAuthTag(ciphertext.subarray(ciphertext.length - GCM_TAG));
  try {
    return Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - GCM_TAG)), d.final()]);
  } catch {
    throw new SealError(`the sealed box does not open for ${context} (another key, another context, or changed in transit)`);
  }
}

/** Seals `plaintext` so that only the holder of `recipientKey`'s private key opens it, for `context`. */
export function sealTo(recipientKey: SealingPublicKey, plaintext: Buffer, context: string): SealedBox {
  const recipient = publicKeyOf(recipientKey, 'the recipient key');
  const sender = newSealingKeyPair();
  const shared = diffieHellman({ privateKey: sender.privateKey, publicKey: recipient });
  const salt = Buffer.concat([Buffer.from(sender.publicKey), Buffer.from(recipientKey)]);
  const { nonce, ciphertext } = encrypt(aesKey(shared, salt, context), plaintext, context);
  return { recipientKey, senderKey: sender.publicKey, nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64') };
}

/** Opens a box sealed to `own`; refuses one sealed to another key or for another context. */
export function openSealed(box: SealedBox, own: SealingKeyPair, context: string): Buffer {
  if (box.recipientKey !== own.publicKey) throw new SealError('the sealed box was sealed to another key (an earlier agent process); waiting for one sealed to this one');
  const shared = diffieHellman({ privateKey: own.privateKey, publicKey: publicKeyOf(box.senderKey, 'the sender key') });
  const salt = Buffer.concat([Buffer.from(box.senderKey), Buffer.from(box.recipientKey)]);
  return decrypt(aesKey(shared, salt, context), Buffer.from(box.nonce, 'base64'), Buffer.from(box.ciphertext, 'base64'), context);
}

/** Seals with a key derived from `secret` (which the reader must hold too), for `context`. */
export function sealWithSecret(secret: Buffer, plaintext: Buffer, context: string): { nonce: string; ciphertext: string } {
  const { nonce, ciphertext } = encrypt(aesKey(secret, Buffer.alloc(0), context), plaintext, context);
  return { nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64') };
}

export function openWithSecret(secret: Buffer, box: { nonce: string; ciphertext: string }, context: string): Buffer {
  return decrypt(aesKey(secret, Buffer.alloc(0), context), Buffer.from(box.nonce, 'base64'), Buffer.from(box.ciphertext, 'base64'), context);
}
