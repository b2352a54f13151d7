package coordinator

import (
	"fmt"
	"path/filepath"
	"time"
)

// Settings are the coordinator's GUCs as the C shim resolved them.
type Settings struct {
	MaxContainers      int           // plcoordinator.max_container_number (postmaster)
	CheckInterval      time.Duration // plcoordinator.check_loop_interval
	AcquireTimeout     time.Duration // plcoordinator.acquire_timeout
	MaxParallelCreates int           // plcoordinator.max_parallel_creates
	ShutdownTimeout    time.Duration // plcoordinator.shutdown_timeout
	TestHooks          bool          // plcoordinator.enable_test_hooks (postmaster)
	Hardening          bool          // plcoordinator.container_hardening
	ConfigFile         string        // resolved plcoordinator.config_file
	DockerHost         string        // plcoordinator.docker_host
	SocketDir          string        // plcoordinator.socket_dir (postmaster), resolved
	DataDir            string        // the instance's data directory
	Instance           string        // system identifier and port: the plcoordinator.instance label
	SegIndex           int           // Greenplum content id, -1 on PostgreSQL
}

// The socket layout under SocketDir. Container directories are kept short
// because a Unix socket path has at most 107 bytes.
const (
	coordinatorSocketName = "coordinator.sock"
	containersDirName     = "c"
	containerDirIDLen     = 12
	// ContainerSocketName is the file PL/Container's clients create in the
	// directory mounted at /tmp/plcontainer.
	ContainerSocketName = "unix.domain.socket.shared.file"
	maxSocketPath       = 107
)

// SocketPath is where the coordinator listens.
func (s Settings) SocketPath() string { return filepath.Join(s.SocketDir, coordinatorSocketName) }

// ContainersDir is the root of the per-container socket directories.
func (s Settings) ContainersDir() string { return filepath.Join(s.SocketDir, containersDirName) }

// check validates what must hold before the coordinator starts.
func (s Settings) check() error {
	if !filepath.IsAbs(s.SocketDir) {
		return fmt.Errorf("plcoordinator.socket_dir %q is not an absolute path", s.SocketDir)
	}
	longest := filepath.Join(s.ContainersDir(), fmt.Sprintf("%0*d", containerDirIDLen, 0), ContainerSocketName)
	if len(longest) > maxSocketPath {
		return fmt.Errorf("plcoordinator.socket_dir %q is too long: container socket paths such as %q would exceed %d bytes",
			s.SocketDir, longest, maxSocketPath)
	}
	if s.MaxContainers < 1 {
		return fmt.Errorf("plcoordinator.max_container_number must be at least 1")
	}
	return nil
}
