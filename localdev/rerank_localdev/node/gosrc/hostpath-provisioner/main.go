// A dynamic provisioner for one-node clusters, on Kubernetes SIG Storage's provisioner library (the same
// controller that the NFS and local-path provisioners are built on): each claim of its StorageClass gets a
// directory under --root on the node it runs on, offered as a hostPath PersistentVolume pinned to that node.
// Delete removes the directory (reclaimPolicy Delete).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v11/controller"
)

type hostPathProvisioner struct {
	root string
	node string
}

func (p *hostPathProvisioner) Provision(_ context.Context, options controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	dir := filepath.Join(p.root, options.PVName)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	// Pods running as any user (the engine's non-root user) can write their cache.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	hostPathType := v1.HostPathDirectory
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: options.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: *options.StorageClass.ReclaimPolicy,
			AccessModes:                   options.PVC.Spec.AccessModes,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: options.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			StorageClassName:              options.StorageClass.Name,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &hostPathType},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{p.node},
				}},
			}}}},
		},
	}, controller.ProvisioningFinished, nil
}

func (p *hostPathProvisioner) Delete(_ context.Context, volume *v1.PersistentVolume) error {
	if volume.Spec.HostPath == nil || filepath.Dir(volume.Spec.HostPath.Path) != p.root {
		return &controller.IgnoredError{Reason: "not a volume of this provisioner's root"}
	}
	return os.RemoveAll(volume.Spec.HostPath.Path)
}

func main() {
	name := flag.String("name", "rerank.local/hostpath", "the provisioner name StorageClasses refer to")
	root := flag.String("root", "/var/lib/hostpath-provisioner", "directory on the node holding the volumes")
	flag.Parse()
	node := os.Getenv("NODE_NAME")
	if node == "" {
		fmt.Fprintln(os.Stderr, "NODE_NAME must be set (the downward API's spec.nodeName)")
		os.Exit(2)
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		klog.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	ctx := context.Background()
	controller.NewProvisionController(ctx, client, *name, &hostPathProvisioner{root: *root, node: node},
		controller.LeaderElection(false)).Run(ctx)
}
