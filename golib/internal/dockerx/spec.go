package dockerx

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// ErrInvalidSpec is wrapped by every error Create returns for a Spec that is
// rejected before the engine is contacted.
var ErrInvalidSpec = errors.New("dockerx: invalid container spec")

// Port is the container port a PL/Container client listens on when it is
// reached over TCP (remote engines).
const Port = "8080/tcp"

// publishHostIP is the only host address a published port is bound to.
// PL/Container left the binding to Docker, which means 0.0.0.0; the
// coordinator only ever connects through the loopback address.
const publishHostIP = "127.0.0.1"

// hardenedPidsLimit caps the number of tasks in a hardened container. The
// stock clients run one process with a handful of threads; 256 leaves room
// for user code that starts helpers while stopping fork bombs.
const hardenedPidsLimit int64 = 256

// hardenedCaps are the capabilities a hardened container keeps after
// dropping ALL. See doc.go for why each one is needed.
var hardenedCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}

// jsonFileOptions bound the disk space the json-file log driver may use per
// container.
var jsonFileOptions = map[string]string{"max-size": "10m", "max-file": "1"}

// Device is one GPU (or other device driver) request, mapped onto a Docker
// DeviceRequest. Count -1 asks for all devices; explicit DeviceIDs require
// Count 0, because the engine rejects both at once.
type Device struct {
	// Driver is the device driver name ("nvidia"); empty lets the engine
	// choose by capability.
	Driver string
	// Count is the number of devices, -1 for all of them.
	Count int
	// DeviceIDs lists explicit device ids ("0", "GPU-<uuid>").
	DeviceIDs []string
	// Capabilities are ANDed capabilities ("gpu", "compute"), sent as the
	// single inner list of DeviceRequest.Capabilities.
	Capabilities []string
}

// Spec describes a container to create. It carries what PL/Container puts
// into its create body (§2.3 of the reference) plus the hardening switch.
type Spec struct {
	// Name is the container name; empty lets the engine pick one.
	Name string
	// Image is the image reference. It must exist on the engine: images are
	// never pulled.
	Image string
	// Cmd is the command, normally one element. The image entrypoint is
	// not overridden.
	Cmd []string
	// Env is a list of KEY=value strings.
	Env []string
	// Labels are set on the container; the coordinator finds its
	// containers by label.
	Labels map[string]string
	// MemoryBytes is the memory limit; 0 means unlimited.
	MemoryBytes int64
	// CPUShares is the relative CPU weight; 0 means the engine default.
	CPUShares int64
	// Network false disables networking (NetworkDisabled and network mode
	// "none"), as PL/Container does unless enable_network is set.
	Network bool
	// PublishTCP8080 exposes 8080/tcp and binds it to 127.0.0.1 on an
	// ephemeral host port (State.HostPort). It needs Network.
	PublishTCP8080 bool
	// Logging selects the json-file log driver (readable through Logs);
	// false selects "none". PL/Container used journald, which needs
	// systemd-journald on the engine host (often absent in containers, on
	// CI machines and on remote engines), so json-file is used instead.
	Logging bool
	// Binds are "host:container:ro|rw" bind mounts, in order.
	Binds []string
	// CgroupParent places the container under a parent cgroup (Greenplum
	// resource groups); empty means the engine default.
	CgroupParent string
	// Devices are device requests (GPUs).
	Devices []Device
	// Hardened applies the restrictions described in doc.go.
	Hardened bool
}

// toCreateConfig maps a Spec onto the Engine API create body. It is a pure
// function so the mapping can be tested without an engine.
func toCreateConfig(s Spec) (*container.Config, *container.HostConfig, error) {
	if s.Image == "" {
		return nil, nil, fmt.Errorf("%w: empty image", ErrInvalidSpec)
	}
	if s.MemoryBytes < 0 {
		return nil, nil, fmt.Errorf("%w: negative memory limit %d", ErrInvalidSpec, s.MemoryBytes)
	}
	if s.CPUShares < 0 {
		return nil, nil, fmt.Errorf("%w: negative cpu shares %d", ErrInvalidSpec, s.CPUShares)
	}
	if s.PublishTCP8080 && !s.Network {
		return nil, nil, fmt.Errorf("%w: publishing %s needs the network", ErrInvalidSpec, Port)
	}

	cfg := &container.Config{
		Image:        s.Image,
		Cmd:          slices.Clone(s.Cmd),
		Env:          slices.Clone(s.Env),
		Labels:       maps.Clone(s.Labels),
		AttachStdout: s.Logging,
		AttachStderr: s.Logging,
	}
	hc := &container.HostConfig{
		Binds: slices.Clone(s.Binds),
		Resources: container.Resources{
			CgroupParent: s.CgroupParent,
			Memory:       s.MemoryBytes,
			CPUShares:    s.CPUShares,
		},
		LogConfig:  container.LogConfig{Type: "none"},
		AutoRemove: false,
		Privileged: false,
	}

	if !s.Network {
		cfg.NetworkDisabled = true
		hc.NetworkMode = container.NetworkMode("none")
	}
	if s.PublishTCP8080 {
		p := nat.Port(Port)
		cfg.ExposedPorts = nat.PortSet{p: struct{}{}}
		// An explicit binding with an empty HostPort makes the engine
		// pick an ephemeral port on the given address only.
		// PublishAllPorts stays false: it would also publish every port
		// the image EXPOSEs, on 0.0.0.0.
		hc.PortBindings = nat.PortMap{p: []nat.PortBinding{{HostIP: publishHostIP, HostPort: ""}}}
	}
	if s.Logging {
		hc.LogConfig = container.LogConfig{Type: "json-file", Config: maps.Clone(jsonFileOptions)}
	}

	for i, d := range s.Devices {
		switch {
		case d.Count < -1:
			return nil, nil, fmt.Errorf("%w: device request %d: count %d", ErrInvalidSpec, i, d.Count)
		case len(d.DeviceIDs) > 0 && d.Count != 0:
			return nil, nil, fmt.Errorf("%w: device request %d: count and device ids are mutually exclusive", ErrInvalidSpec, i)
		case len(d.DeviceIDs) == 0 && d.Count == 0:
			return nil, nil, fmt.Errorf("%w: device request %d: neither count nor device ids", ErrInvalidSpec, i)
		}
		req := container.DeviceRequest{
			Driver:    d.Driver,
			Count:     d.Count,
			DeviceIDs: slices.Clone(d.DeviceIDs),
		}
		if len(d.Capabilities) > 0 {
			req.Capabilities = [][]string{slices.Clone(d.Capabilities)}
		}
		hc.DeviceRequests = append(hc.DeviceRequests, req)
	}

	if s.Hardened {
		harden(hc, s.MemoryBytes)
	}
	return cfg, hc, nil
}

// harden applies the restrictions the stock PL/Container clients tolerate.
// doc.go explains every choice.
func harden(hc *container.HostConfig, memory int64) {
	hc.CapDrop = []string{"ALL"}
	hc.CapAdd = slices.Clone(hardenedCaps)
	hc.SecurityOpt = []string{"no-new-privileges"}
	pids := hardenedPidsLimit
	hc.PidsLimit = &pids
	if memory > 0 {
		hc.MemorySwap = memory
	}
	hc.ReadonlyRootfs = false
	initProcess := false
	hc.Init = &initProcess
}
