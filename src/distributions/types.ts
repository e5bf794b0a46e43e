// The shape of a distribution catalog: everything certrotator knows about where a
// distribution keeps a node's certificates, who signs them, how long they live and
// how the distribution picks up new ones. Catalogs are plain data so a third
// distribution (kubeadm) is a new data file, not new branches in the engine.
//
// Paths are relative to the host root and may contain placeholders:
//   {dataDir}   the distribution's data dir (RKE2: var/lib/rancher/rke2)
//   {nodeName}  the node's name (fixtures only)
//   {nodeIP}    the node's IP (fixtures only)
//   {host}      a per-host name part, e.g. the IP with dots as dashes in RKE's
//               kube-etcd-<ip>.pem; the planner expands it by listing the directory.
import type { Distribution, NodeRole } from './services.js';

export type { Distribution, NodeRole };

// What the distributions write is P-256 (RKE2) and RSA-2048 (RKE); the rest is
// what a person or another tool may have put in place, renewed in kind.
export type KeyAlgorithm =
  | { readonly name: 'ECDSA'; readonly namedCurve: 'P-256' | 'P-384' }
  | { readonly name: 'RSA'; readonly modulusLength: 2048 | 3072 | 4096 };

// How a private key file is PEM-encoded. Go writes ECDSA keys as SEC1
// ("EC PRIVATE KEY", MakeEllipticPrivateKeyPEM) and RSA keys as PKCS#1
// ("RSA PRIVATE KEY"); PKCS#8 is "PRIVATE KEY". The engine keeps whatever the
// original file used; the catalog value is what the fixture generator writes.
export type KeyEncoding = 'sec1' | 'pkcs1' | 'pkcs8';

export type ExtKeyUsageName = 'serverAuth' | 'clientAuth';

export interface ValidityProfile {
  readonly days: number;
  // An environment variable of the distribution's service that replaces `days`
  // when it holds an integer (RKE2: CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS, read by
  // rancher/dynamiclistener cert/cert.go NewSignedCert). Looked up where the
  // service gets its environment: the catalog's serviceEnvironment files.
  readonly daysFromEnv?: string;
  // 'one-hour-back-clamped-to-ca': dynamiclistener's CalculateNotBefore (RKE2).
  // 'ca-not-before': RKE's newSignedCert copies the CA's NotBefore.
  readonly notBefore: 'one-hour-back-clamped-to-ca' | 'ca-not-before';
}

export interface CaFiles {
  readonly cert: string;
  readonly key: string;
}

// What the fixture generator puts in a certificate. Renewal never reads this:
// it copies subject, SANs and usages from the certificate it replaces, exactly
// like `kubeadm certs renew` and RKE2's own regeneration keep the existing identity.
export interface SubjectTemplate {
  readonly cn: string;
  readonly o?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly eku: readonly ExtKeyUsageName[];
}

// How a file gets its replacement.
export type Renewal =
  // certrotator signs a new certificate in place from the on-disk CA.
  | { readonly kind: 'sign'; readonly ca: CaFiles }
  // A key-only file (RKE2's shared legacy signing keys): a fresh key of the same type.
  | { readonly kind: 'new-key' }
  // The distribution rewrites the file itself on every start of the service
  // (RKE2 agent files, k3s pkg/agent/config/config.go get()). `copyOf` names the
  // server file the supervisor hands out as-is (not unique per node).
  // `ca` is the CA certificate on this node to check the result against; `signer`
  // the CA files on the server that sign it (the simulation signs with them).
  | { readonly kind: 'reissued-on-start'; readonly ca: string; readonly signer: CaFiles; readonly copyOf?: string }
  // Remove the files so they are made anew at start (the kube-controller-manager /
  // kube-scheduler certificates that Rancher deletes). Made either by the component
  // itself, self-signed, or by the distribution signed with `distributionSigned.ca`
  // (k3s PR #12285); which one a node has is read from the file on disk, never assumed.
  // `distributionSigned.template` is what the fixture generator puts in the latter.
  | { readonly kind: 'remove-to-regenerate'; readonly distributionSigned?: { readonly ca: CaFiles; readonly template: SubjectTemplate } }
  // Write a trigger file; the distribution regenerates the certificate at start
  // (RKE2 dynamiclistener: server/tls/dynamic-cert-regenerate).
  | { readonly kind: 'trigger'; readonly trigger: string; readonly ca: CaFiles };

// 'pem': a cert file and a key file. 'dynamiclistener-json': a Kubernetes Secret
// serialised as JSON holding tls.crt / tls.key (dynamiclistener's file storage).
export type FileFormat = 'pem' | 'dynamiclistener-json';

export interface CertFile {
  // Stable name, unique within the catalog, used in reports and the journal.
  readonly id: string;
  readonly cert?: string;
  readonly key?: string;
  readonly format: FileFormat;
  readonly renewal: Renewal;
  // The .crt holds the leaf followed by the CA file's certificates (RKE2: EncodeCertsPEM(cert, caCerts)).
  readonly chained: boolean;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly keyEncoding: KeyEncoding;
  readonly validity: ValidityProfile;
  readonly template?: SubjectTemplate;
  // Components that read the file; RKE restarts exactly these containers.
  readonly consumers: readonly string[];
  // Where this certificate is the served one: the port and the address the
  // component listens on (see ListenAddress).
  readonly servedOn?: readonly ServedPort[];
  // Node roles on which the file exists.
  readonly roles: readonly NodeRole[];
  // Exists only on some installs (e.g. Rancher-provisioned cert-dir certs); skipped when absent.
  readonly optional?: boolean;
  // The distribution rewrites this file on every start even when it is not in scope.
  readonly rewrittenOnEveryStart?: boolean;
  // Other files on the host that embed a copy of this certificate and are
  // rewritten by the distribution's service at start, not by certrotator.
  readonly embeddedIn?: readonly EmbeddedCopy[];
}

// A copy of a certificate inside another file (RKE2's admin kubeconfig embeds
// client-admin.crt/.key as client-certificate-data / client-key-data).
export interface EmbeddedCopy {
  // Host-relative path (placeholders allowed). May be absent: the service can be
  // told to write it elsewhere (rke2 --write-kubeconfig).
  readonly path: string;
  readonly format: 'kubeconfig-client-certificate-data';
  // The unit that rewrites the copy when it starts.
  readonly rewrittenOnStartOf: string;
  // The CA certificate the service embeds beside it (certificate-authority-data).
  readonly serverCa: string;
}

// Where a distribution's service reads its environment from (systemd
// EnvironmentFile= lines of its unit, in order; a later file overrides an earlier one).
export interface ServiceEnvironment {
  readonly unit: string;
  readonly whenRoleIn: readonly NodeRole[];
  // Host-relative paths; each may be absent (EnvironmentFile=-...).
  readonly files: readonly string[];
}

// Something in the cluster, not on the host, that holds a copy of these
// certificates and must be renewed by whoever has API access (controller/agent).
export interface ClusterObject {
  readonly kind: 'Secret' | 'ConfigMap';
  readonly namespace: string;
  readonly name: string;
  readonly why: string;
  /** A kubernetes.io/tls Secret whose tls.crt the controller's inventory reads for its expiry. */
  readonly tls?: boolean;
}

export interface ServiceEntry {
  readonly name: string;
  readonly files: readonly CertFile[];
  readonly clusterObjects?: readonly ClusterObject[];
}

// How the node picks up new certificates, chosen by node role (first match wins).
export type RestartPlan =
  // RKE2 server: stop the unit, write marker files (force-restart), start.
  | { readonly kind: 'systemd-stop-start'; readonly unit: string; readonly markerFiles: readonly string[] }
  // RKE2 agent: a plain restart; the agent re-fetches its certificates at start.
  | { readonly kind: 'systemd-restart'; readonly unit: string }
  // RKE: docker restart of the containers that read a changed file.
  | {
      readonly kind: 'docker-restart';
      // `docker restart -t <s>` per container, where the CLI's default (10 s)
      // would kill it before it shut down gracefully.
      readonly stopTimeoutSeconds?: Readonly<Record<string, number>>;
    };

export interface RestartRule {
  readonly whenRoleIn: readonly NodeRole[];
  readonly plan: RestartPlan;
}

// Where a component listens on its host. A real node binds several components to
// 127.0.0.1 only (RKE2: etcd metrics :2381, kube-controller-manager :10257,
// kube-scheduler :10259, the kubelet's healthz :10248) and etcd's peer port to
// the node IP only, so a check must go where the component really is:
//   'loopback': the host's 127.0.0.1 (also right for a wildcard bind);
//   'node-ip':  the node's own address.
export type ListenAddress = 'loopback' | 'node-ip';

export interface ServedPort {
  readonly port: number;
  readonly on: ListenAddress;
}

// A health probe as Rancher's planner makes it (rancher/rancher
// pkg/capr/planner/probe.go): the address the component listens on, the CA that
// signs its serving certificate (the probe verifies the server against it), and
// the client certificate it presents where the component refuses anonymous
// requests (RKE2 and RKE run kube-apiserver with --anonymous-auth=false).
export interface HealthProbe {
  readonly component: string;
  readonly scheme: 'http' | 'https';
  readonly port: number;
  readonly on: ListenAddress;
  readonly path: string;
  readonly roles: readonly NodeRole[];
  // CA file the serving certificate must chain to.
  readonly ca?: string;
  // The CA file exists only on some installs (the cert-dir certificates Rancher
  // configures); without it the probe asks only "healthy?".
  readonly caOptional?: boolean;
  // When the certificate in `ca` is itself signed by this CA (the distribution
  // signs it, k3s PR #12285), the probe trusts this CA instead of the file.
  readonly caWhenSignedBy?: string;
  readonly clientCert?: { readonly cert: string; readonly key: string };
}

export type BackupLayout =
  // `rke2 certificate rotate`: copy the whole server/tls dir (or create agent/tls-<unix>
  // on an agent) and flatten the other files in scope into it.
  | { readonly kind: 'copy-dir-plus-flattened'; readonly dir: string; readonly fallbackParent: string; readonly prefix: string }
  // Copy only the files in scope into <parent>/<prefix><unix>/ by path.
  | { readonly kind: 'files-in-scope'; readonly parent: string; readonly prefix: string };

export interface RoleMarker {
  readonly role: NodeRole;
  // The role is present when a file matching this path exists.
  readonly path: string;
}

export interface CaSpec {
  readonly files: CaFiles;
  readonly cn: string;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly keyEncoding: KeyEncoding;
  // Roles whose nodes hold the CA certificate, and (a subset) the CA key.
  readonly roles: readonly NodeRole[];
  readonly keyRoles: readonly NodeRole[];
}

// A certificate the distribution keeps in its cluster state from the user's
// own configuration instead of generating it (RKE's external etcd client
// material). Never renewed: the distribution would put the configured one back
// at its next run anyway, and its CA is not one a rotation holds. Its host
// files are not any catalog file's, whatever a {host} pattern would say.
export interface UserProvidedCert {
  // The entry's name in the cluster state.
  readonly stateEntry: string;
  // The host files it is written to (key absent when the state holds no key).
  readonly cert: string;
  readonly key?: string;
  // The service whose rotation would otherwise be expected to renew it.
  readonly service: string;
  // Where it comes from, for messages.
  readonly source: string;
}

export interface DistributionCatalog {
  readonly distribution: Distribution;
  readonly defaultDataDir: string;
  readonly services: Readonly<Record<string, ServiceEntry>>;
  // Files renewed only by a rotation of all services (RKE's proxy-client).
  readonly allOnlyFiles: readonly CertFile[];
  // Certificates that live only in the cluster state, on no host, renewed by a
  // rotation of all services (RKE's kube-admin). Kept apart from allOnlyFiles
  // so host planning, the node CLI and the fixtures never see them.
  readonly stateOnlyFiles: readonly CertFile[];
  // State entries taken from the user's configuration, never renewed.
  readonly userProvided: readonly UserProvidedCert[];
  // Cluster objects every rotation of this distribution must also renew.
  readonly clusterObjects: readonly ClusterObject[];
  // CA files the fixture generator creates (never renewed by a rotation).
  readonly cas: readonly CaSpec[];
  readonly restart: readonly RestartRule[];
  readonly probes: readonly HealthProbe[];
  readonly backup: BackupLayout;
  readonly roleMarkers: readonly RoleMarker[];
  // Roles assumed when no marker matches (an RKE2 agent, an RKE worker).
  readonly defaultRoles: readonly NodeRole[];
  // Directories or files (with placeholders) that certrotator may write in; a
  // trailing `*` in the last segment matches any name with that prefix (tls-*).
  readonly writableDirs: readonly string[];
  // Where the distribution's services get their environment (for daysFromEnv).
  readonly serviceEnvironment?: readonly ServiceEnvironment[];
}
