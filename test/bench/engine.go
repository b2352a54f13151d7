package main

// A minimal Docker Engine API client for the raw baseline, over the
// engine's Unix socket with the standard library (the project keeps
// github.com/docker/docker behind golib/internal/dockerx, which this
// package may not import).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type engine struct {
	hc *http.Client
}

func newEngine(sock string) *engine {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns:    6,
		IdleConnTimeout: 30 * time.Second,
	}
	return &engine{hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call sends a request; a status of 300 or more is an error unless it is
// listed in ok. out, if not nil, receives the JSON answer.
func (e *engine) call(ctx context.Context, method, path string, body []byte, out any, ok ...int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("docker %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		for _, s := range ok {
			if resp.StatusCode == s {
				return resp.StatusCode, nil
			}
		}
		return resp.StatusCode, fmt.Errorf("docker %s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("docker %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (e *engine) version(ctx context.Context) (version, api string, err error) {
	var v struct{ Version, APIVersion string }
	_, err = e.call(ctx, http.MethodGet, "/version", nil, &v)
	return v.Version, v.APIVersion, err
}

// inspectRaw returns a container's inspect document.
func (e *engine) inspectRaw(ctx context.Context, id string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	_, err := e.call(ctx, http.MethodGet, "/containers/"+id+"/json", nil, &m)
	return m, err
}

// times returns the engine's creation and start times of a container.
func (e *engine) times(ctx context.Context, id string) (created, started time.Time, err error) {
	var v struct {
		Created string
		State   struct{ StartedAt string }
	}
	if _, err = e.call(ctx, http.MethodGet, "/containers/"+id+"/json", nil, &v); err != nil {
		return
	}
	created, _ = time.Parse(time.RFC3339Nano, v.Created)
	started, _ = time.Parse(time.RFC3339Nano, v.State.StartedAt)
	return
}

func (e *engine) create(ctx context.Context, name string, body []byte) (string, error) {
	var r struct{ ID string }
	_, err := e.call(ctx, http.MethodPost, "/containers/create?name="+url.QueryEscape(name), body, &r)
	return r.ID, err
}

func (e *engine) start(ctx context.Context, id string) error {
	_, err := e.call(ctx, http.MethodPost, "/containers/"+id+"/start", nil, nil, http.StatusNotModified)
	return err
}

// remove force-removes a container; a missing one counts as removed.
func (e *engine) remove(ctx context.Context, id string) error {
	_, err := e.call(ctx, http.MethodDelete, "/containers/"+id+"?force=1&v=1", nil, nil, http.StatusNotFound)
	return err
}

// list returns the ids of every container with the label key=value.
func (e *engine) list(ctx context.Context, key, value string) ([]string, error) {
	f, _ := json.Marshal(map[string][]string{"label": {key + "=" + value}})
	var cs []struct {
		ID string `json:"Id"`
	}
	_, err := e.call(ctx, http.MethodGet, "/containers/json?all=1&filters="+url.QueryEscape(string(f)), nil, &cs)
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids, err
}
