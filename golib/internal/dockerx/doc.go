// Package dockerx is the coordinator's only door to the Docker Engine API,
// and the only package in the project that imports github.com/docker/docker.
// That module is frozen at v28.5.2; keeping every use behind this package
// means a move to github.com/moby/moby/client touches one directory.
//
// # Client
//
// New builds a client from explicit Options. Nothing is read from the
// environment (the Go side of the background worker sees an empty one), the
// Engine API version is negotiated on the first request so engines back to
// 20.10 (API 1.41) work, and HTTP proxies are never used. Every call runs
// under its own timeout (Options.CallTimeout, 30 s by default) derived from
// the caller's context, so a wedged engine cannot block the coordinator;
// connecting is bounded separately (at most 10 s, as PL/Container's
// CURLOPT_CONNECTTIMEOUT) so that an engine that does not answer is
// reported by IsUnreachable. Only Events outlives the call timeout, once
// the engine has accepted the subscription. The package starts no
// goroutines except the one per Events subscription, never installs signal
// handlers, and never pulls images.
//
// Errors carry the operation and the image or short container id
// ("dockerx: create img:tag: ...", "dockerx: inspect 0123456789ab: ...") and
// wrap the client's error, so IsNotFound, IsConflict, IsTransient and
// IsUnreachable keep working however often callers wrap them again.
//
// # Container spec
//
// Spec carries what PL/Container's create body carries (command, env,
// labels, memory, CPU shares, binds, cgroup parent, device requests,
// network on or off), with these differences:
//
//   - A published 8080/tcp is bound to 127.0.0.1 with an ephemeral host
//     port. PL/Container set PublishAllPorts, which binds 0.0.0.0 and also
//     publishes every port the image exposes.
//   - Logging uses the json-file driver (at most one 10 MB file), not
//     journald: journald needs systemd-journald on the engine host, which
//     containers, CI machines and many remote engines lack, and json-file
//     can always be read back through Logs. Without Logging the driver is
//     "none", as in PL/Container.
//   - Device requests are valid JSON and Count is honoured per request.
//
// AutoRemove is never set: the coordinator must be able to inspect the exit
// code and OOMKilled of a container that ended, and removes it itself.
// Privileged is never set.
//
// # Hardening
//
// Spec.Hardened applies only restrictions the stock PL/Container clients
// tolerate. The clients must start as root inside the container, bind their
// socket in a 0700 directory owned by the database user, chown and chmod
// the socket, and then switch to EXECUTOR_UID/EXECUTOR_GID themselves.
//
//   - CapDrop ALL, CapAdd CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID.
//     DAC_OVERRIDE lets root create the socket in the database user's 0700
//     directory; CHOWN and FOWNER let it chown the socket to the executor and
//     chmod it 0666; SETUID and SETGID let it drop to the executor's uid and
//     gid ("Must run as root and then downgrade to usual user"), including
//     setgroups. Everything else Docker grants by default (FSETID, KILL,
//     MKNOD, NET_RAW, NET_BIND_SERVICE, SETFCAP, SETPCAP, SYS_CHROOT,
//     AUDIT_WRITE) is dropped: the clients listen on 8080 or a Unix socket
//     and signal only their own processes.
//   - SecurityOpt "no-new-privileges": nothing in the container can gain
//     privileges through setuid or file-capability binaries after the
//     client has dropped to the executor. Dropping privileges with setuid(2)
//     is unaffected.
//   - PidsLimit 256: the clients are one process with a few threads; the
//     limit stops fork bombs in user code while leaving room for helpers.
//   - MemorySwap equal to the memory limit (when there is one): no swap
//     beyond the limit, so a runaway function is OOM-killed (and reported
//     through State.OOMKilled) instead of thrashing the segment host. On
//     hosts without swap accounting the engine ignores it with a warning.
//   - ReadonlyRootfs stays false. The stock images and user code write to
//     /tmp and other places (Python caches, R temp files); a read-only root
//     with a tmpfs /tmp would break them for little gain, since the client
//     directory is already bind-mounted read-only.
//   - Init false: the client is PID 1, exactly as under PL/Container, so the
//     exit code and OOM kill belong to the client process itself and no
//     docker-init binary is injected even if the engine enables it by
//     default.
//
// Not applied: a non-root User (the clients refuse to run), user-namespace
// remapping (root in the container could no longer write the 0700 socket
// directory), and custom seccomp or AppArmor profiles (the engine defaults
// stay in force).
//
// # Testing
//
// The unit tests need no engine: the Spec mapping is the pure function
// toCreateConfig, and error classification is exercised against a fake
// engine served by net/http/httptest. The integration tests (build tag
// "integration") use the engine at unix:///var/run/docker.sock and skip
// when it does not answer; they build a tiny static image from scratch and
// never pull.
package dockerx
