// A device plugin that advertises GPUs a node does not have, through the kubelet's own device-plugin gRPC API
// (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1), the way NVIDIA's k8s-device-plugin advertises real ones:
// the kubelet counts `--count` healthy `nvidia.com/gpu` devices in the node's capacity, the scheduler places pods
// by them, and each container given some gets NVIDIA_VISIBLE_DEVICES naming them (NVIDIA's "envvar" strategy,
// which the NVIDIA container runtime reads). No device node is mounted: there is no GPU behind the names.
//
// The kubelet removes every socket in its device-plugins directory when it restarts; the plugin then serves
// and registers again.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the devices once; they never change.
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	response := &pluginapi.AllocateResponse{}
	for _, container := range req.ContainerRequests {
		ids := strings.Join(container.DevicesIds, ",")
		log.Printf("allocate %s", ids)
		response.ContainerResponses = append(response.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": ids},
		})
	}
	return response, nil
}

// serve listens on socket and registers it with the kubelet; it returns the server once the kubelet accepted it.
func serve(p *plugin, dir, socket, resource string) (*grpc.Server, error) {
	path := filepath.Join(dir, socket)
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	go func() { _ = server.Serve(listener) }()

	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		server.Stop()
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: socket, ResourceName: resource,
		Options: &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		server.Stop()
		return nil, fmt.Errorf("registering with the kubelet: %w", err)
	}
	return server, nil
}

func main() {
	dir := flag.String("device-plugin-dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	resource := flag.String("resource", "nvidia.com/gpu", "the extended resource to advertise")
	count := flag.Int("count", 4, "how many devices")
	prefix := flag.String("id-prefix", "GPU-rerank-node-", "device IDs are this prefix and an index")
	flag.Parse()

	p := &plugin{}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("%s%d", *prefix, i), Health: pluginapi.Healthy})
	}
	socket := "rerank-" + strings.NewReplacer("/", "-", ".", "-").Replace(*resource) + ".sock"
	for {
		server, err := serve(p, *dir, socket, *resource)
		if err != nil {
			log.Printf("not registered yet: %v", err)
			time.Sleep(time.Second)
			continue
		}
		log.Printf("registered %d %s devices", *count, *resource)
		// The kubelet deletes the socket when it restarts: serve and register again.
		for {
			time.Sleep(time.Second)
			if _, err := os.Stat(filepath.Join(*dir, socket)); err != nil {
				break
			}
		}
		server.Stop()
	}
}
