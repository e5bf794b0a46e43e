// Private keys: parse, generate and encode in the format the original file used.
import { createPrivateKey, createPublicKey, generateKeyPair as generateNodeKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { KeyAlgorithm, KeyEncoding } from '../distributions/types.js';
import { CertificateFileError } from './errors.js';
import { encodePem, parsePem } from './pem.js';

const ENCODING_BY_PEM_TYPE: Record<string, KeyEncoding> = {
  'EC PRIVATE KEY': 'sec1',
  'RSA PRIVATE KEY': 'pkcs1',
  'PRIVATE KEY': 'pkcs8',
};

export interface LoadedKey {
  readonly keyObject: KeyObject;
  readonly encoding: KeyEncoding;
  readonly algorithm: KeyAlgorithm;
}

export function keyAlgorithmOf(key: KeyObject, file: string): KeyAlgorithm {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return { name: 'ECDSA', namedCurve: 'P-256' };
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'secp384r1') return { name: 'ECDSA', namedCurve: 'P-384' };
  const bits = details.modulusLength;
  if (key.asymmetricKeyType === 'rsa' && (bits === 2048 || bits === 3072 || bits === 4096)) return { name: 'RSA', modulusLength: bits };
  throw new CertificateFileError(
    file,
    `unsupported key type ${key.asymmetricKeyType ?? '?'} ${details.namedCurve ?? details.modulusLength ?? ''}`.trim(),
  );
}

// The key and its file's encoding, without asking OpenSSL for the key's details
// (~45 µs): a renewal takes the algorithm from the certificate it checks the key against.
export function loadPrivateKey(text: string, file: string): Omit<LoadedKey, 'algorithm'> {
  const blocks = parsePem(text, file);
  if (blocks.length !== 1) throw new CertificateFileError(file, `expected one private key PEM block, found ${blocks.length}`);
  const [block] = blocks as [(typeof blocks)[0]];
  const encoding = ENCODING_BY_PEM_TYPE[block.type];
  if (!encoding) throw new CertificateFileError(file, `unexpected PEM block type ${block.type} (want a private key)`);
  let keyObject: KeyObject;
  try {
    // OpenSSL gets the block as PEM, re-encoded from what parsePem accepted: its PEM
    // reader goes straight to the decoder the label names, where DER input with a
    // type costs ~4x as much (it tries decoders in turn).
    keyObject = createPrivateKey({ key: encodePem(block.type, block.der), format: 'pem' });
  } catch {
    // The crypto error text can quote the input; keep only our own words.
    throw new CertificateFileError(file, `corrupt ${block.type}: cannot be parsed`);
  }
  return { keyObject, encoding };
}

export function parsePrivateKey(text: string, file: string): LoadedKey {
  const key = loadPrivateKey(text, file);
  return { ...key, algorithm: keyAlgorithmOf(key.keyObject, file) };
}

export function webCryptoParams(algorithm: KeyAlgorithm): RsaHashedImportParams | EcKeyImportParams {
  return algorithm.name === 'ECDSA'
    ? { name: 'ECDSA', namedCurve: algorithm.namedCurve }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

// What Go's x509.CreateCertificate picks for these key types.
export function signingAlgorithm(algorithm: KeyAlgorithm): Algorithm | EcdsaParams {
  return algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm;
}

export interface GeneratedKey {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

const generateNode = promisify(generateNodeKeyPair);

// Node's async keygen runs on the libuv threadpool (RSA takes ~100 ms: it must not
// run on the event loop).
export async function generateKeyPair(algorithm: KeyAlgorithm): Promise<GeneratedKey> {
  return algorithm.name === 'ECDSA'
    ? generateNode('ec', { namedCurve: algorithm.namedCurve })
    : generateNode('rsa', { modulusLength: algorithm.modulusLength, publicExponent: 0x10001 });
}

export interface EncodedKeyPair {
  readonly spki: Buffer;
  readonly privateKeyPem: string;
}

const PEM_TYPE: Record<KeyEncoding, string> = { sec1: 'EC PRIVATE KEY', pkcs1: 'RSA PRIVATE KEY', pkcs8: 'PRIVATE KEY' };

// A renewal's key pair, generated and encoded on the threadpool: the SubjectPublicKeyInfo
// DER for the certificate and the private key PEM for the file, with no KeyObject
// left behind for the event loop's GC to free.
export async function generateEncodedKeyPair(algorithm: KeyAlgorithm, encoding: KeyEncoding): Promise<EncodedKeyPair> {
  const encodings = {
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: encoding, format: 'pem' },
  } as const;
  const { publicKey, privateKey } =
    algorithm.name === 'ECDSA'
      ? await generateNode('ec', { namedCurve: algorithm.namedCurve, ...encodings })
      : await generateNode('rsa', { modulusLength: algorithm.modulusLength, publicExponent: 0x10001, ...encodings });
  return { spki: publicKey as unknown as Buffer, privateKeyPem: privateKey as unknown as string };
}

// For @peculiar/x509 (self-signed CAs in fixtures); the KeyObjects convert without re-encoding.
export function toCryptoKeys(key: GeneratedKey, algorithm: KeyAlgorithm): CryptoKeyPair {
  const params = webCryptoParams(algorithm);
  return {
    // Node's webcrypto types and the DOM lib's differ only in newer usage names.
    publicKey: key.publicKey.toCryptoKey(params, true, ['verify']) as unknown as CryptoKey,
    privateKey: key.privateKey.toCryptoKey(params, false, ['sign']) as unknown as CryptoKey,
  };
}

export function encodePrivateKey(key: GeneratedKey, encoding: KeyEncoding): string {
  return encodePem(PEM_TYPE[encoding], key.privateKey.export({ type: encoding, format: 'der' }));
}

export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}
