package config

import (
	"slices"
	"time"
)

// Defaults and limits applied by Parse.
const (
	// DefaultBackendName is the name of the built-in backend that every
	// runtime without a <backend name=.../> element uses.
	DefaultBackendName = "default"

	// DefaultMemoryMB is the container memory limit, in MiB, of a runtime
	// without <setting memory_mb=.../>. PL/Container's sample file claims
	// "unlimited", but its code uses 1024 as well.
	DefaultMemoryMB = 1024

	// DefaultCPUShare is the Docker CPU share of a runtime without
	// <setting cpu_share=.../>.
	DefaultCPUShare = 1024

	// DefaultStartTimeout bounds the time from container create to ready for
	// a runtime without <coordinator start_timeout=.../>.
	DefaultStartTimeout = 30 * time.Second

	// MaxRuntimeIDLength is the longest runtime id, in bytes.
	MaxRuntimeIDLength = 63

	// MaxFileSize is the largest configuration file Parse and Load accept,
	// in bytes (4 MiB).
	MaxFileSize = 4 << 20

	// ReservedContainerPath is the container directory that holds the
	// client's Unix socket; no shared directory may be mounted there.
	ReservedContainerPath = "/tmp/plcontainer"
)

// Backend types as stored in Backend.Type.
const (
	// BackendDocker is a Docker engine reached over a Unix socket (XML types
	// "docker" and "local_docker").
	BackendDocker = "docker"

	// BackendRemoteDocker is a Docker engine reached over TCP (XML type
	// "remote_docker").
	BackendRemoteDocker = "remote_docker"
)

// Config is one parsed, validated configuration file.
type Config struct {
	Path     string              // file the configuration was read from
	Missing  bool                // the file does not exist: zero runtimes (not an error)
	Runtimes map[string]*Runtime // by runtime id
	Order    []string            // runtime ids in file order
	Backends map[string]*Backend // by name; always contains DefaultBackendName
}

// Runtime is one <runtime> element: the container a PL function with
// "# container: <id>" runs in.
type Runtime struct {
	ID      string // <id>, unique within the file
	Image   string // <image>, a Docker image reference passed verbatim
	Command string // <command>, the container command as one argument (never split on spaces)

	SharedDirs          []SharedDir     // <shared_directory> bind mounts in file order; nil = none
	MemoryMB            int64           // <setting memory_mb>; default DefaultMemoryMB
	CPUShare            int64           // <setting cpu_share>; default DefaultCPUShare
	UseContainerLogging bool            // <setting use_container_logging>; default false
	EnableNetwork       bool            // <setting enable_network>; default false
	ResourceGroupID     string          // <setting resource_group_id>, canonical decimal OID; "" = none
	Roles               []string        // <setting roles> split on ',' and trimmed; nil = none
	Devices             []DeviceRequest // <device_request> elements in file order; nil = none
	Backend             string          // <backend name>; default DefaultBackendName

	// Coordinator settings PL/Container lacks, from the optional
	// <coordinator .../> element.

	Prewarm             int           // fresh containers kept ready; default 0; 0..100
	IdleTimeout         time.Duration // idle session container removed after this; 0 = kept until the session ends
	MaxContainers       int           // per-runtime container cap; 0 = only the global limit applies
	ReuseAcrossSessions bool          // a container may serve another session after its first one ends; default false
	StartTimeout        time.Duration // bound on create→ready; default DefaultStartTimeout; 1 s..600 s
}

// SharedDir is one <shared_directory host= container= access=/> bind mount.
type SharedDir struct {
	Host      string // absolute host path, as written
	Container string // absolute container path, as written
	ReadOnly  bool   // access="ro"
}

// DeviceRequest is one <device_request> element, a Docker device request
// (GPUs).
type DeviceRequest struct {
	Type         string   // type attribute, e.g. "gpu"
	All          bool     // all attribute present, or no <deviceid> children
	DeviceIDs    []string // <deviceid> values in file order; nil when All
	Capabilities []string // <capacity> values followed by Type
	Driver       string   // <driver>; "" = engine default
}

// Backend is one container engine runtimes can be placed on.
type Backend struct {
	Name string // name attribute; DefaultBackendName for the built-in one
	Type string // BackendDocker or BackendRemoteDocker

	Address         string // docker: Unix socket path as written ("" = the plcoordinator.docker_host GUC); remote_docker: host name
	Port            int    // remote_docker: TCP port 1..65535
	Username        string // remote_docker: HTTP basic auth user; set together with Password
	Password        string // remote_docker: HTTP basic auth password
	AddSegmentIndex bool   // remote_docker: prefix the host name with "<segment index + 1>."

	// TLS settings for remote_docker engines (not in PL/Container).

	TLSCA     string // <tls_ca>: CA bundle file
	TLSCert   string // <tls_cert>: client certificate file; set together with TLSKey
	TLSKey    string // <tls_key>: client key file
	TLSVerify bool   // <tls_verify>: verify the engine's certificate; default false
}

// newDefaultBackend returns the built-in backend every configuration has
// unless the file declares its own backend named DefaultBackendName.
func newDefaultBackend() *Backend {
	return &Backend{Name: DefaultBackendName, Type: BackendDocker}
}

// newRuntime returns a runtime with every default applied.
func newRuntime() *Runtime {
	return &Runtime{
		MemoryMB:     DefaultMemoryMB,
		CPUShare:     DefaultCPUShare,
		Backend:      DefaultBackendName,
		StartTimeout: DefaultStartTimeout,
	}
}

// UserControl reports whether the runtime is restricted to the roles listed
// in Roles: PL/Container restricts a runtime as soon as it sets roles,
// enables the network or requests a device. PL/Container refuses every call
// of a restricted runtime that lists no roles.
func (r *Runtime) UserControl() bool {
	return len(r.Roles) > 0 || r.EnableNetwork || len(r.Devices) > 0
}

// Equal reports whether r and o have the same value in every field. Nil and
// empty slices compare equal, and two nil runtimes are equal. Equal does not
// look at the Backend the runtime names; compare that with Backend.Equal.
func (r *Runtime) Equal(o *Runtime) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.ID == o.ID &&
		r.Image == o.Image &&
		r.Command == o.Command &&
		slices.Equal(r.SharedDirs, o.SharedDirs) &&
		r.MemoryMB == o.MemoryMB &&
		r.CPUShare == o.CPUShare &&
		r.UseContainerLogging == o.UseContainerLogging &&
		r.EnableNetwork == o.EnableNetwork &&
		r.ResourceGroupID == o.ResourceGroupID &&
		slices.Equal(r.Roles, o.Roles) &&
		slices.EqualFunc(r.Devices, o.Devices, DeviceRequest.equal) &&
		r.Backend == o.Backend &&
		r.Prewarm == o.Prewarm &&
		r.IdleTimeout == o.IdleTimeout &&
		r.MaxContainers == o.MaxContainers &&
		r.ReuseAcrossSessions == o.ReuseAcrossSessions &&
		r.StartTimeout == o.StartTimeout
}

// equal reports whether d and o have the same value in every field.
func (d DeviceRequest) equal(o DeviceRequest) bool {
	return d.Type == o.Type &&
		d.All == o.All &&
		slices.Equal(d.DeviceIDs, o.DeviceIDs) &&
		slices.Equal(d.Capabilities, o.Capabilities) &&
		d.Driver == o.Driver
}

// Equal reports whether b and o have the same value in every field. Two nil
// backends are equal.
func (b *Backend) Equal(o *Backend) bool {
	if b == nil || o == nil {
		return b == o
	}
	return *b == *o
}
