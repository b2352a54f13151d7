// Package integration holds plcoordinator's integration tests: a real
// PostgreSQL 15 with the extension preloaded, a real Docker engine and the
// test runtime image (test/image). No mocks.
//
// The tests carry the build tag "integration" and must run as root (the
// server itself runs as the OS user postgres, which must be in the docker
// group; see harness_test.go):
//
//	make -s && make -s install
//	go test -tags integration -count=1 -v ./test/integration/
//
// The package is skipped, with a message, when Docker, the PostgreSQL 15
// binaries or the installed extension are missing.
package integration
