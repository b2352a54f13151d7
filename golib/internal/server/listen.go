package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// Listen prepares dir (created 0700 if missing; it must be a real
// directory owned by this user, and is forced to 0700) and listens on
// path inside it, replacing a stale socket left by an earlier process.
func Listen(dir, path string) (*net.UnixListener, error) {
	if err := PrivateDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("server: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("server: removing stale socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// PrivateDir makes sure dir exists, is a directory (not a symlink) owned by
// the effective user, and has mode 0700.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("server: creating %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("server: %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("server: cannot read directory owner")
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("server: %s is owned by uid %d, not by the database user (uid %d)", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	}
	return nil
}
