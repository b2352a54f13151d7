// Package pgcluster starts throwaway PostgreSQL 15 clusters with
// plcoordinator preloaded, for the benchmark (test/bench) and the
// integration tests. It must run as root: the server runs as the OS user
// postgres (PostgreSQL refuses root), started with runuser, and that user
// must be able to use the Docker socket (test/setup.sh arranges both).
//
// Everything lives in one short temporary directory under /tmp owned by
// postgres: the data directory, the server log, the server's Unix socket and
// plcoordinator.socket_dir (container socket paths must stay under 108
// bytes). The server listens on no TCP address; the port only names its
// socket and is part of the coordinator's instance label.
//
//	cl, err := pgcluster.Start(ctx, pgcluster.Options{Config: xml})
//	if err != nil { ... }
//	defer cl.Close()
//	conn, err := cl.Conn(ctx)
//
// Close stops the server at once if it still runs, force-removes the
// containers still labelled with its instance, and deletes the directory;
// call RemainingContainers after Stop to check for leaks first.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// Defaults of Options.
const (
	DefaultBin    = "/usr/lib/postgresql/15/bin"
	DefaultOSUser = "postgres"
)

// ConfigFile is the runtime configuration file the coordinator reads by
// default, in the data directory.
const ConfigFile = "plcontainer_configuration.xml"

// LabelInstance is the container label that names the coordinator
// instance (golib/internal/cache.LabelInstance).
const LabelInstance = "plcoordinator.instance"

// Options configure a cluster.
type Options struct {
	// Bin is the directory of initdb, pg_ctl and postgres (DefaultBin).
	Bin string
	// OSUser runs the server and is its superuser (DefaultOSUser).
	OSUser string
	// Config is the runtime configuration (plcontainer_configuration.xml);
	// empty writes none.
	Config string
	// Settings are extra postgresql.conf lines "name = value", written in
	// name order after the ones Start sets (later lines win). Values are
	// written verbatim: quote strings, e.g. "'60s'".
	Settings map[string]string
	// NoExtension skips CREATE EXTENSION plcoordinator and waiting until
	// the coordinator is ready.
	NoExtension bool
}

// Cluster is a running (or stopped) throwaway cluster.
type Cluster struct {
	opts     Options
	dir      string
	port     int
	uid, gid int
	instance string
	running  bool
}

// Start creates, configures and starts a cluster, then (unless
// NoExtension) creates the extension and waits until the coordinator is
// ready. On failure nothing is left behind and the error carries the tail
// of the server log.
func Start(ctx context.Context, o Options) (cl *Cluster, err error) {
	if o.Bin == "" {
		o.Bin = DefaultBin
	}
	if o.OSUser == "" {
		o.OSUser = DefaultOSUser
	}
	u, err := user.Lookup(o.OSUser)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{opts: o}
	c.uid, _ = strconv.Atoi(u.Uid)
	c.gid, _ = strconv.Atoi(u.Gid)
	if c.dir, err = os.MkdirTemp("/tmp", "plc."); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	defer func() {
		if err != nil {
			if tail := c.logTail(20); tail != "" {
				err = fmt.Errorf("%w\nserver log:\n%s", err, tail)
			}
			_ = c.Close()
			cl = nil
		}
	}()
	if err := os.Chown(c.dir, c.uid, c.gid); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if c.port, err = freePort(); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if err := c.run(ctx, "initdb", "-D", c.DataDir(), "-A", "trust", "--no-sync"); err != nil {
		return nil, err
	}
	if err := c.appendConf(); err != nil {
		return nil, err
	}
	if o.Config != "" {
		if err := c.WriteConfig(o.Config); err != nil {
			return nil, err
		}
	}
	if err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-l", c.LogFile(), "-w", "-t", "60", "start"); err != nil {
		return nil, err
	}
	c.running = true

	conn, err := c.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx,
		"SELECT system_identifier::text || '-' || current_setting('port') FROM pg_control_system()").
		Scan(&c.instance); err != nil {
		return nil, fmt.Errorf("pgcluster: reading the system identifier: %w", err)
	}
	if o.NoExtension {
		return c, nil
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION plcoordinator"); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	var ready bool
	if err := conn.QueryRow(ctx, "SELECT plcoordinator.wait_until_ready(30000)").Scan(&ready); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if !ready {
		return nil, errors.New("pgcluster: the coordinator was not ready within 30 s")
	}
	return c, nil
}

// appendConf adds the cluster's settings to postgresql.conf.
func (c *Cluster) appendConf() error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n# pgcluster\nport = %d\nunix_socket_directories = '%s'\nlisten_addresses = ''\n", c.port, c.dir)
	fmt.Fprintf(&b, "shared_preload_libraries = 'plcoordinator'\nplcoordinator.socket_dir = '%s'\n", c.SocketDir())
	names := make([]string, 0, len(c.opts.Settings))
	for name := range c.opts.Settings {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s = %s\n", name, c.opts.Settings[name])
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// run runs a PostgreSQL program as the OS user, in its own process group
// so that a terminal's Ctrl-C reaches only the caller.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, "runuser",
		append([]string{"-u", c.opts.OSUser, "--", filepath.Join(c.opts.Bin, prog)}, args...)...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: %s: %w\n%s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// freePort returns a TCP port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dir is the cluster's temporary directory; the server's Unix socket is
// there.
func (c *Cluster) Dir() string { return c.dir }

// DataDir is the data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.dir, "data") }

// LogFile is the server log's path.
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, "server.log") }

// SocketDir is plcoordinator.socket_dir.
func (c *Cluster) SocketDir() string { return filepath.Join(c.dir, "s") }

// Port is the server's port (it names the Unix socket only).
func (c *Cluster) Port() int { return c.port }

// Instance is the value of the plcoordinator.instance label of the
// cluster's containers: system identifier and port.
func (c *Cluster) Instance() string { return c.instance }

// ConnString is a libpq connection string for the superuser and database
// postgres, over the Unix socket.
func (c *Cluster) ConnString() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", c.dir, c.port, c.opts.OSUser)
}

// Conn opens a new session as the superuser; the caller closes it.
func (c *Cluster) Conn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.ConnString())
	if err != nil {
		return nil, fmt.Errorf("pgcluster: connecting: %w", err)
	}
	return conn, nil
}

// WorkerPID is the pid of the coordinator background worker, from
// pg_stat_activity (works without the extension).
func (c *Cluster) WorkerPID(ctx context.Context) (int, error) {
	conn, err := c.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var pid int
	err = conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'plcoordinator'").Scan(&pid)
	if err != nil {
		return 0, fmt.Errorf("pgcluster: finding the coordinator worker: %w", err)
	}
	return pid, nil
}

// PostmasterPID is the pid in postmaster.pid.
func (c *Cluster) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("pgcluster: postmaster.pid: %w", err)
	}
	return pid, nil
}

// Log returns the server log so far ("" if there is none).
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.LogFile())
	return string(b)
}

func (c *Cluster) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(c.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// WriteConfig replaces the runtime configuration file atomically (a
// reload never sees half a file). It does not reload: call
// plcoordinator.reload_config() (or pg_reload_conf()) for that.
func (c *Cluster) WriteConfig(xml string) error {
	path := filepath.Join(c.DataDir(), ConfigFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(xml), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := os.Chown(tmp, c.uid, c.gid); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// Stop stops the server with pg_ctl's mode: "smart", "fast" (the
// coordinator removes its containers) or "immediate".
func (c *Cluster) Stop(mode string) error {
	if !c.running {
		return nil
	}
	if err := c.run(context.Background(), "pg_ctl", "-D", c.DataDir(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return err
	}
	c.running = false
	return nil
}

// RemainingContainers returns the ids of every container, running or not,
// labelled with the cluster's instance.
func (c *Cluster) RemainingContainers() ([]string, error) {
	if c.instance == "" {
		return nil, nil
	}
	out, err := exec.Command("docker", "ps", "-aq", "--no-trunc",
		"--filter", "label="+LabelInstance+"="+c.instance).Output()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: docker ps: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// Close stops the server immediately if it runs, force-removes the
// containers of its instance and deletes the directory. It may be called
// more than once.
func (c *Cluster) Close() error {
	var errs []error
	if c.running {
		if err := c.Stop("immediate"); err != nil {
			errs = append(errs, err)
		}
	}
	ids, err := c.RemainingContainers()
	errs = append(errs, err)
	if len(ids) > 0 {
		if out, err := exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: docker rm: %w: %s", err, strings.TrimSpace(string(out))))
		}
	}
	if c.dir != "" && !c.running {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: %w", err))
		}
		c.dir = ""
	}
	return errors.Join(errs...)
}
