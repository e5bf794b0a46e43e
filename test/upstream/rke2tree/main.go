// rke2tree lays out the certificate files of an RKE2 server node the way RKE2
// makes them, with the library RKE2 makes them with (rancher/dynamiclistener:
// cert.NewSelfSignedCACert, cert.NewSignedCert, MakeEllipticPrivateKeyPEM,
// factory.TLS for the supervisor's dynamic-cert.json, GenerateSelfSignedCertKey
// for the controller-manager and scheduler --cert-dir pairs). Which files, with
// which subject, SANs and usages, is the table below, written by hand from k3s's
// pkg/daemons/control/deps/deps.go (genClientCerts, genServerCerts,
// genRequestHeaderCerts, genETCDCerts) and pkg/server/handlers/handlers.go
// (the agent's certificates), not from certrotator's catalog: the tests renew
// this tree with certrotator and judge the result against what this made.
//
// Usage: rke2tree -root DIR -node-name NAME -node-ip IP
package main

import (
	"crypto"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rancher/dynamiclistener/cert"
	"github.com/rancher/dynamiclistener/factory"
	"github.com/rancher/dynamiclistener/storage/file"
)

type ca struct {
	file string // under server/tls, without .crt/.key
	cn   string // "<prefix>-ca@<unix>" (deps.go createSigningCertKey)
}

type leaf struct {
	file  string // under the data dir, without .crt/.key
	ca    string // ca.file
	cn    string
	org   []string
	dns   []string
	ips   []net.IP
	usage []x509.ExtKeyUsage
}

var (
	client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	both   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

func main() {
	root := flag.String("root", "", "host root to write under")
	nodeName := flag.String("node-name", "", "the node's name")
	nodeIP := flag.String("node-ip", "", "the node's IP")
	flag.Parse()
	if *root == "" || *nodeName == "" || *nodeIP == "" {
		log.Fatal("usage: rke2tree -root DIR -node-name NAME -node-ip IP")
	}
	ip := net.ParseIP(*nodeIP)
	tls := filepath.Join(*root, "var/lib/rancher/rke2/server/tls")
	agent := filepath.Join(*root, "var/lib/rancher/rke2/agent")
	ts := time.Now().Unix()

	// config.SANs (k3s pkg/cli/server/server.go): 127.0.0.1, ::1, localhost, the
	// node name, the node IPs, and the first IP of the service CIDR (10.43.0.0/16).
	sanDNS := []string{"localhost", *nodeName}
	sanIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), ip, net.ParseIP("10.43.0.1")}

	cas := []ca{
		{"server-ca", fmt.Sprintf("rke2-server-ca@%d", ts)},
		{"client-ca", fmt.Sprintf("rke2-client-ca@%d", ts)},
		{"request-header-ca", fmt.Sprintf("rke2-request-header-ca@%d", ts)},
		{"etcd/server-ca", fmt.Sprintf("etcd-server-ca@%d", ts)},
		{"etcd/peer-ca", fmt.Sprintf("etcd-peer-ca@%d", ts)},
	}
	const s = "server/tls/"
	leaves := []leaf{
		// genClientCerts
		{s + "client-admin", "client-ca", "system:admin", []string{"system:masters"}, nil, nil, client},
		{s + "client-supervisor", "client-ca", "system:rke2-supervisor", []string{"system:masters"}, nil, nil, client},
		{s + "client-controller", "client-ca", "system:kube-controller-manager", nil, nil, nil, client},
		{s + "client-scheduler", "client-ca", "system:kube-scheduler", nil, nil, nil, client},
		{s + "client-kube-apiserver", "client-ca", "system:apiserver", []string{"system:masters"}, nil, nil, client},
		{s + "client-kube-proxy", "client-ca", "system:kube-proxy", nil, nil, nil, client},
		{s + "client-rke2-controller", "client-ca", "system:rke2-controller", nil, nil, nil, client},
		{s + "client-rke2-cloud-controller", "client-ca", "rke2-cloud-controller-manager", nil, nil, nil, client},
		// genServerCerts
		{s + "serving-kube-apiserver", "server-ca", "kube-apiserver", nil,
			append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, sanDNS...), sanIPs, server},
		// genRequestHeaderCerts
		{s + "client-auth-proxy", "request-header-ca", "system:auth-proxy", nil, nil, nil, client},
		// genETCDCerts
		{s + "etcd/client", "etcd/server-ca", "etcd-client", nil, nil, nil, client},
		{s + "etcd/server-client", "etcd/server-ca", "etcd-server", nil, append([]string{"kine.sock"}, sanDNS...), sanIPs, both},
		{s + "etcd/peer-server-client", "etcd/peer-ca", "etcd-peer", nil, append([]string{"kine.sock"}, sanDNS...), sanIPs, both},
		// The agent's, signed by the supervisor (handlers.go: servingKubeletCert, clientKubeletCert, fileHandler).
		{"agent/serving-kubelet", "server-ca", *nodeName, nil, []string{*nodeName, "localhost"}, []net.IP{net.ParseIP("127.0.0.1"), ip}, server},
		{"agent/client-kubelet", "client-ca", "system:node:" + *nodeName, []string{"system:nodes"}, nil, nil, client},
		{"agent/client-kube-proxy", "client-ca", "system:kube-proxy", nil, nil, nil, client},
		{"agent/client-rke2-controller", "client-ca", "system:rke2-controller", nil, nil, nil, client},
	}

	signers := map[string]crypto.Signer{}
	certs := map[string]*x509.Certificate{}
	for _, c := range cas {
		key := newKey(filepath.Join(tls, c.file+".key"))
		crt, err := cert.NewSelfSignedCACert(cert.Config{CommonName: c.cn}, key)
		check(err)
		write(filepath.Join(tls, c.file+".crt"), cert.EncodeCertPEM(crt), 0o644)
		signers[c.file], certs[c.file] = key, crt
	}
	// The agent keeps copies of the CAs it trusts (k3s pkg/agent/config/config.go).
	write(filepath.Join(agent, "server-ca.crt"), cert.EncodeCertPEM(certs["server-ca"]), 0o644)
	write(filepath.Join(agent, "client-ca.crt"), cert.EncodeCertPEM(certs["client-ca"]), 0o644)

	for _, l := range leaves {
		path := filepath.Join(*root, "var/lib/rancher/rke2", l.file)
		key := newKey(path + ".key")
		crt, err := cert.NewSignedCert(cert.Config{CommonName: l.cn, Organization: l.org, AltNames: cert.AltNames{DNSNames: l.dns, IPs: l.ips}, Usages: l.usage}, key, certs[l.ca], signers[l.ca])
		check(err)
		// A leaf file holds the leaf, then its CA (util.EncodeCertsPEM(cert, caCerts)).
		write(path+".crt", append(cert.EncodeCertPEM(crt), cert.EncodeCertPEM(certs[l.ca])...), 0o644)
	}
	// Key-only files: the legacy kubelet signing keys (genClientCerts,
	// genServerCerts) and the service-account signing key, RSA 2048 (genServiceAccount).
	newKey(filepath.Join(tls, "client-kubelet.key"))
	newKey(filepath.Join(tls, "serving-kubelet.key"))
	rsaKey, err := cert.NewPrivateKey()
	check(err)
	write(filepath.Join(tls, "service.key"), cert.EncodePrivateKeyPEM(rsaKey), 0o600)

	// The supervisor's listener certificate, cached in dynamic-cert.json by
	// dynamiclistener's file storage (k3s pkg/cluster/https.go: CN and O "rke2",
	// signed by server-ca).
	tlsFactory := &factory.TLS{CACert: []*x509.Certificate{certs["server-ca"]}, CAKey: signers["server-ca"], CN: "rke2", Organization: []string{"rke2"}}
	names := append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, sanDNS...)
	for _, i := range sanIPs {
		names = append(names, i.String())
	}
	secret, _, err := tlsFactory.AddCN(nil, names...)
	check(err)
	check(file.New(filepath.Join(tls, "dynamic-cert.json")).Update(secret))

	// kube-controller-manager and kube-scheduler make their own serving pair in
	// --cert-dir when none is given (MaybeDefaultWithSelfSignedCerts("localhost",
	// nil, [127.0.0.1]) → GenerateSelfSignedCertKeyWithFixtures): a throwaway
	// "localhost-ca@<unix>" CA, the leaf followed by it in the .crt.
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		crt, key, err := cert.GenerateSelfSignedCertKey("localhost", []net.IP{net.ParseIP("127.0.0.1")}, nil)
		check(err)
		write(filepath.Join(tls, c, c+".crt"), crt, 0o644)
		write(filepath.Join(tls, c, c+".key"), key, 0o600)
	}
}

// A P-256 key in SEC1 PEM, as LoadOrGenerateKeyFile writes it.
func newKey(path string) crypto.Signer {
	pemBytes, err := cert.MakeEllipticPrivateKeyPEM()
	check(err)
	write(path, pemBytes, 0o600)
	key, err := cert.ParsePrivateKeyPEM(pemBytes)
	check(err)
	return key.(crypto.Signer)
}

func write(path string, data []byte, mode os.FileMode) {
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	check(os.WriteFile(path, data, mode))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
