// rketree lays out the certificate files of one RKE node exactly as rke makes and
// deploys them, with rke's own code (github.com/rancher/rke/pki v1.8.0):
// GenerateRKECerts for the cluster's bundle, GenerateRKENodeCerts for what a node
// of these roles gets (getCertKeys), the CA key stripped on a node without the
// controlplane role and each pair written to its Path/KeyPath as the
// cert-deployer container does (pki/deploy.go DeployCertificatesOnPlaneHost).
// The tests renew this tree with certrotator and judge the result against what
// rke made, not against certrotator's catalog.
//
// Usage: rketree -root DIR -address IP [-roles etcd,controlplane,worker]
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/rancher/rke/pki"
	"github.com/rancher/rke/pki/cert"
	v3 "github.com/rancher/rke/types"
)

func main() {
	root := flag.String("root", "", "host root to write under")
	address := flag.String("address", "", "the node's address")
	roles := flag.String("roles", "etcd,controlplane,worker", "the node's roles")
	flag.Parse()
	if *root == "" || *address == "" {
		log.Fatal("usage: rketree -root DIR -address IP [-roles etcd,controlplane,worker]")
	}
	node := v3.RKEConfigNode{Address: *address, InternalAddress: *address, HostnameOverride: *address, Role: strings.Split(*roles, ",")}
	cfg := v3.RancherKubernetesEngineConfig{
		Nodes: []v3.RKEConfigNode{node},
		// rke's defaults (cluster/defaults.go): the service CIDR's first IP and the
		// cluster domain go into the kube-apiserver certificate's SANs.
		Services: v3.RKEConfigServices{KubeAPI: v3.KubeAPIService{ServiceClusterIPRange: "10.43.0.0/16"}, KubeController: v3.KubeControllerService{ClusterCIDR: "10.42.0.0/16", ServiceClusterIPRange: "10.43.0.0/16"}, Kubelet: v3.KubeletService{ClusterDomain: "cluster.local"}},
	}
	ctx := context.Background()
	bundle, err := pki.GenerateRKECerts(ctx, cfg, "", "")
	check(err)
	isControl := strings.Contains(*roles, "controlplane")
	for name, c := range pki.GenerateRKENodeCerts(ctx, cfg, *address, bundle) {
		if name == pki.CACertName && !isControl {
			c.Key = nil
		}
		if c.Certificate != nil {
			write(*root, c.Path, cert.EncodeCertPEM(c.Certificate))
		}
		if c.Key != nil {
			write(*root, c.KeyPath, cert.EncodePrivateKeyPEM(c.Key))
		}
		if c.Config != "" && c.ConfigPath != "" {
			write(*root, c.ConfigPath, []byte(c.Config))
		}
	}
}

// cert-deployer writes every file 0600 (rancher/rke-tools cert-deployer).
func write(root, path string, data []byte) {
	full := filepath.Join(root, path)
	check(os.MkdirAll(filepath.Dir(full), 0o755))
	check(os.WriteFile(full, data, 0o600))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
