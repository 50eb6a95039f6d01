// Command controlplane runs an embedded etcd and a real kube-apiserver in one
// process, so the collection's tests have a genuine Kubernetes API without a
// container runtime. It is a test harness, not a production control plane.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	// Our own flags come first and end at "--"; everything after is handed to
	// kube-apiserver unchanged, so its flags live in one place: apiserver_args()
	// in tests/cluster/dlcluster/controlplane.py.
	fs := flag.NewFlagSet("controlplane", flag.ExitOnError)
	etcdDir := fs.String("etcd-dir", "", "etcd data directory")
	clientURL := fs.String("etcd-client-url", "http://127.0.0.1:2379", "etcd client URL (loopback only)")
	peerURL := fs.String("etcd-peer-url", "http://127.0.0.1:2380", "etcd peer URL (loopback only)")
	args := os.Args[1:]
	split := len(args)
	for i, a := range args {
		if a == "--" {
			split = i
			break
		}
	}
	if err := fs.Parse(args[:split]); err != nil {
		os.Exit(2)
	}
	apiserverArgs := []string{}
	if split < len(args) {
		apiserverArgs = args[split+1:]
	}
	if *etcdDir == "" {
		fmt.Fprintln(os.Stderr, "controlplane: --etcd-dir is required")
		os.Exit(2)
	}

	etcd, err := startEtcd(*etcdDir, *clientURL, *peerURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: etcd: %v\n", err)
		os.Exit(1)
	}
	// Close etcd cleanly on SIGTERM so its WAL is consistent; the apiserver
	// handles the same signal itself and returns from cli.Run.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		etcd.Close()
		os.Exit(0)
	}()

	os.Args = append([]string{"kube-apiserver"}, apiserverArgs...)
	code := cli.Run(app.NewAPIServerCommand())
	etcd.Close()
	os.Exit(code)
}

func startEtcd(dir, clientURL, peerURL string) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "controlplane"
	cfg.LogLevel = "error"
	client, err := url.Parse(clientURL)
	if err != nil {
		return nil, err
	}
	peer, err := url.Parse(peerURL)
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}
