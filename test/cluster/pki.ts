// The test cluster's PKI, made with openssl: one CA (which also signs CSRs through
// the controller-manager's signers), a serving/client certificate for the
// apiserver and an admin client in system:masters, and the service-account key.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function pkiPaths(dir: string): ClusterPki {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
  };
}

/** Creates the PKI under `dir` unless it is already complete (a restarted cluster keeps its CA). */
export function ensureClusterPki(dir: string): ClusterPki {
  const p = pkiPaths(dir);
  if ([p.caCert, p.caKey, p.servingCert, p.servingKey, p.adminCert, p.adminKey, p.saKey].every((f) => existsSync(f))) {
    return p;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650',
      '-subj', '/CN=certrotator-test-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'],
    dir,
  );
  const issue = (name: string, subject: string, ext: string[]): void => {
    writeFileSync(join(dir, `${name}.ext`), ext.join('\n') + '\n');
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '3650',
      '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  };
  issue('apiserver', '/CN=kube-apiserver', [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth,clientAuth',
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
  ]);
  issue('admin', '/O=system:masters/CN=certrotator-test-admin', [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=clientAuth',
  ]);
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  for (const key of [p.caKey, p.servingKey, p.adminKey, p.saKey]) chmodSync(key, 0o600);
  return p;
}

export function writeKubeconfig(path: string, server: string, pki: ClusterPki): void {
  const text = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: certrotator-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${pki.caCert}`,
    'users:',
    '- name: admin',
    '  user:',
    `    client-certificate: ${pki.adminCert}`,
    `    client-key: ${pki.adminKey}`,
    'contexts:',
    '- name: certrotator-test',
    '  context:',
    '    cluster: certrotator-test',
    '    user: admin',
    'current-context: certrotator-test',
    '',
  ].join('\n');
  writeFileSync(path, text, { mode: 0o600 });
}
