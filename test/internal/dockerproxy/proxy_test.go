package dockerproxy

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestProxy_CountsCutsAndRestores needs the local Docker engine.
func TestProxy_CountsCutsAndRestores(t *testing.T) {
	if _, err := os.Stat(DefaultEngine); err != nil {
		t.Skip("no Docker engine socket")
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	p := New("unix", sock, DefaultEngine)
	require.NoError(t, p.Start())
	defer p.Close()

	get := func() error {
		c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
		resp, err := c.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	require.NoError(t, get())
	require.EqualValues(t, 1, p.Requests())
	require.EqualValues(t, 1, p.ByPath()["GET /_ping"])

	p.Cut()
	require.Error(t, get())
	require.NoError(t, p.Start())
	require.NoError(t, get())
	require.EqualValues(t, 2, p.Requests())
}
