// Test and demo support: run the CLI in-process with captured output, and read
// certificates back with the openssl CLI as an independent judge.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { main } from '../cli/main.js';

const execFileAsync = promisify(execFile);

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(args: string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

export interface OpensslCert {
  readonly text: string;
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  readonly san: string;
  readonly keyUsage: string;
  readonly extKeyUsage: string;
  readonly basicConstraints: string;
  readonly publicKeyAlgorithm: string;
  readonly publicKeySize: string;
  readonly curve: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKeyPem: string;
}

const after = (text: string, heading: RegExp): string => {
  const m = text.match(new RegExp(`${heading.source}.*\\n\\s*(.*)`));
  return m?.[1]?.trim() ?? '';
};

export async function opensslX509(file: string): Promise<OpensslCert> {
  const { stdout: text } = await execFileAsync('openssl', ['x509', '-noout', '-text', '-in', file]);
  const { stdout: serial } = await execFileAsync('openssl', ['x509', '-noout', '-serial', '-in', file]);
  const { stdout: publicKeyPem } = await execFileAsync('openssl', ['x509', '-noout', '-pubkey', '-in', file]);
  const line = (re: RegExp) => text.match(re)?.[1]?.trim() ?? '';
  return {
    text,
    serial: serial.trim().replace(/^serial=/, '').replace(/^0+(?=.)/, ''),
    subject: line(/Subject: (.*)/),
    issuer: line(/Issuer: (.*)/),
    san: after(text, /X509v3 Subject Alternative Name:/),
    keyUsage: after(text, /X509v3 Key Usage:.*/),
    extKeyUsage: after(text, /X509v3 Extended Key Usage:.*/),
    basicConstraints: after(text, /X509v3 Basic Constraints:.*/),
    publicKeyAlgorithm: line(/Public Key Algorithm: (.*)/),
    publicKeySize: line(/Public-Key: \((\d+ bit)\)/),
    curve: line(/NIST CURVE: (.*)/),
    notBefore: new Date(line(/Not Before: (.*)/)),
    notAfter: new Date(line(/Not After : (.*)/)),
    publicKeyPem,
  };
}

export async function opensslVerify(caFile: string, certFile: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await execFileAsync('openssl', ['verify', '-CAfile', caFile, certFile]);
    return { ok: stdout.trim().endsWith(': OK'), output: stdout.trim() };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() };
  }
}

export async function opensslPublicKeyOfPrivate(keyFile: string): Promise<string> {
  const { stdout } = await execFileAsync('openssl', ['pkey', '-in', keyFile, '-pubout']);
  return stdout;
}

/** The serial (hex, no leading zeros, lower case) of the certificate `openssl s_client` is served on ip:port. */
export async function opensslServedSerial(ip: string, port: number): Promise<string> {
  return new X509Certificate(await opensslServedPem(ip, port)).serialNumber.replace(/^0+(?=.)/, '').toLowerCase();
}

/** The leaf certificate (PEM) `openssl s_client` is served on ip:port. */
export function opensslServedPem(ip: string, port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = execFile('openssl', ['s_client', '-connect', `${ip}:${port}`, '-servername', 'localhost'], { timeout: 10_000 }, (err, stdout) => {
      const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(stdout);
      if (m) resolve(m[0]);
      else reject(new Error(`openssl s_client ${ip}:${port} showed no certificate${err ? `: ${err.message}` : ''}`));
    });
    child.stdin?.end();
  });
}
