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
  if (key.asymmetricKeyType === 'rsa' && details.modulusLength === 2048) return { name: 'RSA', modulusLength: 2048 };
  throw new CertificateFileError(
    file,
    `unsupported key type ${key.asymmetricKeyType ?? '?'} ${details.namedCurve ?? details.modulusLength ?? ''}`.trim(),
  );
}

export function parsePrivateKey(text: string, file: string): LoadedKey {
  const blocks = parsePem(text, file);
  if (blocks.length !== 1) throw new CertificateFileError(file, `expected one private key PEM block, found ${blocks.length}`);
  const [block] = blocks as [(typeof blocks)[0]];
  const encoding = ENCODING_BY_PEM_TYPE[block.type];
  if (!encoding) throw new CertificateFileError(file, `unexpected PEM block type ${block.type} (want a private key)`);
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: block.der, format: 'der', type: encoding });
  } catch {
    // The crypto error text can quote the input; keep only our own words.
    throw new CertificateFileError(file, `corrupt ${block.type}: cannot be parsed`);
  }
  return { keyObject, encoding, algorithm: keyAlgorithmOf(keyObject, file) };
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
  // For @peculiar/x509 (the certificate's public key).
  readonly publicKey: CryptoKey;
  // For encoding the key file without a WebCrypto round trip.
  readonly privateKeyObject: KeyObject;
  readonly privateKey: CryptoKey;
}

const generateNode = promisify(generateNodeKeyPair);

// Node's async keygen runs on the libuv threadpool (RSA takes ~100 ms: it must not
// run on the event loop); the KeyObjects convert to CryptoKeys without re-encoding.
export async function generateKeyPair(algorithm: KeyAlgorithm): Promise<GeneratedKey> {
  const { publicKey, privateKey } =
    algorithm.name === 'ECDSA'
      ? await generateNode('ec', { namedCurve: algorithm.namedCurve })
      : await generateNode('rsa', { modulusLength: algorithm.modulusLength, publicExponent: 0x10001 });
  const params = webCryptoParams(algorithm);
  return {
    // Node's webcrypto types and the DOM lib's differ only in newer usage names.
    publicKey: publicKey.toCryptoKey(params, true, ['verify']) as unknown as CryptoKey,
    privateKey: privateKey.toCryptoKey(params, false, ['sign']) as unknown as CryptoKey,
    privateKeyObject: privateKey,
  };
}

export async function importSigningKey(key: LoadedKey): Promise<CryptoKey> {
  const pkcs8 = key.keyObject.export({ type: 'pkcs8', format: 'der' });
  return globalThis.crypto.subtle.importKey('pkcs8', pkcs8, webCryptoParams(key.algorithm), false, ['sign']);
}

export function encodePrivateKey(key: GeneratedKey, encoding: KeyEncoding): string {
  const type = { sec1: 'EC PRIVATE KEY', pkcs1: 'RSA PRIVATE KEY', pkcs8: 'PRIVATE KEY' }[encoding];
  return encodePem(type, key.privateKeyObject.export({ type: encoding, format: 'der' }));
}

export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}
