# plcoordinator: PGXS builds the C shim (plcoordinator.so, loaded by
# shared_preload_libraries); go builds the c-shared library that only the
# coordinator worker dlopen()s (plcoordinator_go.so).  The shim never links
# the Go library.

EXTENSION = plcoordinator
MODULE_big = plcoordinator
OBJS = $(patsubst %.c,%.o,$(wildcard bgworker/*.c))
DATA = $(wildcard sql/plcoordinator--*.sql)
PGFILEDESC = "plcoordinator - container coordinator for PL/Container"

PG_CPPFLAGS = -Iinclude -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK = -ldl -lpthread

REGRESS = status gucs config access acquire
REGRESS_OPTS = --inputdir=test/regress --outputdir=test/regress \
	--temp-config=test/regress/plcoordinator.conf --temp-instance=tmp_check \
	--load-extension=plcoordinator
EXTRA_CLEAN = build tmp_check test/regress/results test/regress/regression.diffs \
	test/regress/regression.out

# No LLVM bitcode: the shim is small and JIT inlining buys nothing here.
with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

GO ?= go
GOLIB_SO = build/plcoordinator_go.so
GO_SOURCES = $(shell find golib -name '*.go' -not -name '*_test.go' 2>/dev/null)
# Go sees no environment inside a PostgreSQL process: runtime settings are
# fixed at link time.  asyncpreemptoff keeps Go off SIGURG, which
# PostgreSQL uses to wake latches.
GO_LDFLAGS = -X=runtime.godebugDefault=asyncpreemptoff=1

all: $(GOLIB_SO)

# PGXS does not track header dependencies: a struct that changes in a
# header must rebuild every object that lays it out.
$(OBJS): $(wildcard include/*.h)

$(GOLIB_SO): $(GO_SOURCES) include/plcoordinator_abi.h go.mod go.sum
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath \
		-ldflags='$(GO_LDFLAGS)' -o $@ ./golib

install: install-golib
install-golib: $(GOLIB_SO)
	$(MKDIR_P) '$(DESTDIR)$(pkglibdir)'
	$(INSTALL_SHLIB) $(GOLIB_SO) '$(DESTDIR)$(pkglibdir)/plcoordinator_go.so'

uninstall: uninstall-golib
uninstall-golib:
	rm -f '$(DESTDIR)$(pkglibdir)/plcoordinator_go.so'

.PHONY: install-golib uninstall-golib gotest gotest-integration test-image \
	abicheck protocheck fuzz lint test demo bench

# Go unit tests (no database, no Docker).
gotest:
	$(GO) test -race -count=1 ./golib/... ./test/image/...

# Go tests against the real Docker engine.
gotest-integration: test-image
	$(GO) test -race -count=1 -tags integration ./golib/...

# The shim must not depend on the Go library (ARCHITECTURE.md rule 1), and
# the Go library must export the ABI the shim expects.
abicheck: all
	test/abi/check.sh plcoordinator.so $(GOLIB_SO)

# The C codec against the golden frames the Go codec is tested with.
protocheck:
	$(CC) -std=gnu11 -Wall -Wextra -Werror -Iinclude -o build/golden test/protocol/golden.c bgworker/proto.c
	build/golden golib/internal/protocol/testdata/golden

# Brief fuzzing of the decoders; crashers land in testdata/fuzz.
fuzz:
	$(GO) test -run XXX -fuzz FuzzReadFrame -fuzztime 15s ./golib/internal/protocol/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime 15s ./golib/internal/config/

lint:
	test -z "$$(gofmt -l golib test)"
	$(GO) vet ./...

test-image:
	test/image/build.sh --if-missing

# Everything, as CI runs it (needs root: installs, starts servers).
test:
	test/run.sh

demo:
	test/demo.sh

bench:
	test/bench/run.sh
