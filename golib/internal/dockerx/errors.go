package dockerx

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errhttp"
	"github.com/docker/docker/client"
)

// The classifiers below work on errors returned by this package, however
// deeply they have been wrapped since (with %w). The Docker client maps every
// HTTP error status onto a containerd errdefs class, which is what they test;
// string matching is used in exactly one place (Remove, "removal already in
// progress"), where the engine offers nothing else.

// IsNotFound reports whether err says the container (or image) does not
// exist (HTTP 404).
func IsNotFound(err error) bool {
	return err != nil && cerrdefs.IsNotFound(err)
}

// IsConflict reports whether err is an engine conflict (HTTP 409): a name
// already in use, a container that is not running, a removal in progress.
func IsConflict(err error) bool {
	return err != nil && cerrdefs.IsConflict(err)
}

// IsUnreachable reports whether err means the engine could not be reached at
// all: the socket is missing, refuses connections or is not accessible, the
// address does not answer within the dial timeout, the name does not
// resolve, or the peer does not speak HTTP. An established connection that
// breaks (EOF, reset) is transient but not unreachable.
func IsUnreachable(err error) bool {
	if err == nil {
		return false
	}
	if isDialError(err) {
		return true
	}
	if !client.IsErrConnectionFailed(err) {
		return false
	}
	// For refused connections, dial timeouts, failed unix dials and
	// non-HTTP peers the client replaces the cause with a fixed "cannot
	// connect" message. When it keeps the *url.Error instead and that error
	// is not a dial error (checked above), the connection was established
	// and failed later.
	var uErr *url.Error
	return !errors.As(err, &uErr)
}

// serverErrors are the errors the Docker client attaches to 5xx responses,
// except 501 Not Implemented (a missing feature does not come back). The
// client maps 500 and 503 onto errdefs classes and every other status onto
// an "unexpected status" value that errors.Is can still match.
var serverErrors = func() []error {
	var errs []error
	for code := 500; code < 600; code++ {
		if code != http.StatusNotImplemented {
			errs = append(errs, errhttp.ToNative(code))
		}
	}
	return errs
}()

// isServerError reports whether err carries an engine (or proxy) 5xx
// status other than 501.
func isServerError(err error) bool {
	if cerrdefs.IsInternal(err) || cerrdefs.IsUnavailable(err) {
		return true
	}
	for _, e := range serverErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isDialError reports whether a net.OpError from the dial step is in the
// chain.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// IsTransient reports whether retrying the same call later may succeed:
// the engine is unreachable or dropped the connection (refused, reset, EOF),
// the call timed out, or the engine answered with a server error (HTTP 5xx
// except 501, including a proxy's 502 and 504).
// Cancellation by the caller, permission problems and TLS verification
// failures are not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, fs.ErrPermission) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	switch {
	case IsUnreachable(err), client.IsErrConnectionFailed(err):
		return true
	case cerrdefs.IsDeadlineExceeded(err):
		return true
	case isServerError(err):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	}
	var nErr net.Error
	return errors.As(err, &nErr) && nErr.Timeout()
}
