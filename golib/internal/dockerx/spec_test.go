package dockerx

import (
	"encoding/json"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plcSpec is the create body of §2.3 of the PL/Container reference.
func plcSpec() Spec {
	return Spec{
		Image: "python39.alpine:latest",
		Cmd:   []string{"/clientdir/py3client.sh"},
		Env: []string{
			"EXECUTOR_UID=1000", "EXECUTOR_GID=1000", "DB_USER_NAME=gpadmin",
			"DB_NAME=testpy", "DB_QE_PID=12345", "USE_CONTAINER_NETWORK=false",
		},
		Labels: map[string]string{"owner": "gpadmin", "dbid": "0", "databaseid": "16384", "segindex": "0"},
		Binds: []string{
			"/usr/local/gpdb/bin/plcontainer_clients:/clientdir:ro",
			"/tmp/plcontainer.12345.0.0:/tmp/plcontainer:rw",
		},
		MemoryBytes: 1 << 30,
		CPUShares:   1024,
	}
}

func boolPtr(b bool) *bool    { return &b }
func int64Ptr(i int64) *int64 { return &i }

func TestToCreateConfig_valid(t *testing.T) {
	cases := []struct {
		name  string
		spec  Spec
		check func(t *testing.T, cfg *container.Config, hc *container.HostConfig)
	}{
		{
			name: "plcontainer body",
			spec: plcSpec(),
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				want := plcSpec()
				assert.Equal(t, want.Image, cfg.Image)
				assert.Equal(t, want.Cmd, []string(cfg.Cmd))
				assert.Nil(t, cfg.Entrypoint, "the image entrypoint applies")
				assert.Equal(t, want.Env, cfg.Env)
				assert.Equal(t, want.Labels, cfg.Labels)
				assert.Equal(t, want.Binds, hc.Binds)
				assert.EqualValues(t, 1<<30, hc.Memory)
				assert.EqualValues(t, 1024, hc.CPUShares)
				assert.Zero(t, hc.MemorySwap, "swap is only pinned when hardened")
				assert.True(t, cfg.NetworkDisabled)
				assert.Equal(t, container.NetworkMode("none"), hc.NetworkMode)
				assert.Equal(t, "none", hc.LogConfig.Type)
				assert.False(t, cfg.AttachStdout)
				assert.False(t, cfg.AttachStderr)
				assert.False(t, cfg.Tty)
				assert.Empty(t, cfg.ExposedPorts)
				assert.Empty(t, hc.PortBindings)
				assert.False(t, hc.PublishAllPorts)
				assert.False(t, hc.AutoRemove)
				assert.False(t, hc.Privileged)
				assert.Empty(t, hc.CapDrop)
				assert.Empty(t, hc.CapAdd)
				assert.Empty(t, hc.SecurityOpt)
				assert.Nil(t, hc.PidsLimit)
				assert.Nil(t, hc.Init)
				assert.Empty(t, hc.DeviceRequests)
			},
		},
		{
			name: "network enabled",
			spec: Spec{Image: "img", Network: true},
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				assert.False(t, cfg.NetworkDisabled)
				assert.Equal(t, container.NetworkMode(""), hc.NetworkMode, "engine default network")
			},
		},
		{
			name: "publish 8080 on loopback only",
			spec: Spec{Image: "img", Network: true, PublishTCP8080: true},
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				assert.Equal(t, nat.PortSet{"8080/tcp": struct{}{}}, cfg.ExposedPorts)
				assert.Equal(t, nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}}, hc.PortBindings)
				assert.False(t, hc.PublishAllPorts, "PublishAllPorts would bind 0.0.0.0")
			},
		},
		{
			name: "logging",
			spec: Spec{Image: "img", Logging: true},
			check: func(t *testing.T, cfg *container.Config, hc *container.HostConfig) {
				assert.Equal(t, "json-file", hc.LogConfig.Type)
				assert.Equal(t, map[string]string{"max-size": "10m", "max-file": "1"}, hc.LogConfig.Config)
				assert.True(t, cfg.AttachStdout)
				assert.True(t, cfg.AttachStderr)
			},
		},
		{
			name: "cgroup parent",
			spec: Spec{Image: "img", CgroupParent: "/gpdb/6"},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				assert.Equal(t, "/gpdb/6", hc.CgroupParent)
			},
		},
		{
			name: "devices",
			spec: Spec{Image: "img", Devices: []Device{
				{Count: -1, Capabilities: []string{"gpu"}},
				{Driver: "nvidia", DeviceIDs: []string{"0", "GPU-abc"}, Capabilities: []string{"gpu", "compute"}},
				{Count: 2},
			}},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				assert.Equal(t, []container.DeviceRequest{
					{Count: -1, Capabilities: [][]string{{"gpu"}}},
					{Driver: "nvidia", Count: 0, DeviceIDs: []string{"0", "GPU-abc"}, Capabilities: [][]string{{"gpu", "compute"}}},
					{Count: 2},
				}, hc.DeviceRequests)
			},
		},
		{
			name: "hardened with memory limit",
			spec: Spec{Image: "img", MemoryBytes: 64 << 20, Hardened: true},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				assert.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
				assert.ElementsMatch(t, []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"}, []string(hc.CapAdd))
				assert.Equal(t, []string{"no-new-privileges"}, hc.SecurityOpt)
				assert.Equal(t, int64Ptr(256), hc.PidsLimit)
				assert.EqualValues(t, 64<<20, hc.Memory)
				assert.EqualValues(t, 64<<20, hc.MemorySwap, "no swap beyond the limit")
				assert.False(t, hc.ReadonlyRootfs)
				assert.Equal(t, boolPtr(false), hc.Init)
				assert.False(t, hc.Privileged)
				assert.False(t, hc.AutoRemove)
			},
		},
		{
			name: "hardened without memory limit",
			spec: Spec{Image: "img", Hardened: true},
			check: func(t *testing.T, _ *container.Config, hc *container.HostConfig) {
				assert.Zero(t, hc.Memory)
				assert.Zero(t, hc.MemorySwap, "a swap limit without a memory limit is invalid")
				assert.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, hc, err := toCreateConfig(tc.spec)
			require.NoError(t, err)
			require.NotNil(t, cfg)
			require.NotNil(t, hc)
			tc.check(t, cfg, hc)
		})
	}
}

func TestToCreateConfig_invalid(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
	}{
		{"empty image", Spec{}},
		{"negative memory", Spec{Image: "img", MemoryBytes: -1}},
		{"negative cpu shares", Spec{Image: "img", CPUShares: -1}},
		{"publish without network", Spec{Image: "img", PublishTCP8080: true}},
		{"device count and ids", Spec{Image: "img", Devices: []Device{{Count: 1, DeviceIDs: []string{"0"}}}}},
		{"device all and ids", Spec{Image: "img", Devices: []Device{{Count: -1, DeviceIDs: []string{"0"}}}}},
		{"device bad count", Spec{Image: "img", Devices: []Device{{Count: -2}}}},
		{"device empty", Spec{Image: "img", Devices: []Device{{Capabilities: []string{"gpu"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := toCreateConfig(tc.spec)
			require.ErrorIs(t, err, ErrInvalidSpec)
		})
	}
}

// TestToCreateConfig_noAliasing asserts that the body does not share slices
// or maps with the Spec, so a caller reusing its Spec cannot change a body
// that is still being sent.
func TestToCreateConfig_noAliasing(t *testing.T) {
	s := plcSpec()
	s.Devices = []Device{{DeviceIDs: []string{"0"}, Capabilities: []string{"gpu"}}}
	cfg, hc, err := toCreateConfig(s)
	require.NoError(t, err)

	s.Cmd[0] = "changed"
	s.Env[0] = "changed"
	s.Binds[0] = "changed"
	s.Labels["owner"] = "changed"
	s.Devices[0].DeviceIDs[0] = "changed"
	s.Devices[0].Capabilities[0] = "changed"

	want := plcSpec()
	assert.Equal(t, want.Cmd, []string(cfg.Cmd))
	assert.Equal(t, want.Env, cfg.Env)
	assert.Equal(t, want.Binds, hc.Binds)
	assert.Equal(t, want.Labels, cfg.Labels)
	assert.Equal(t, []string{"0"}, hc.DeviceRequests[0].DeviceIDs)
	assert.Equal(t, [][]string{{"gpu"}}, hc.DeviceRequests[0].Capabilities)
}

// TestToCreateConfig_json checks the wire form of the fields whose zero
// value matters: Init false must be sent, not omitted, and the port binding
// must name the loopback address.
func TestToCreateConfig_json(t *testing.T) {
	cfg, hc, err := toCreateConfig(Spec{Image: "img", Network: true, PublishTCP8080: true, Hardened: true})
	require.NoError(t, err)
	body, err := json.Marshal(container.CreateRequest{Config: cfg, HostConfig: hc})
	require.NoError(t, err)

	var got struct {
		ExposedPorts map[string]struct{}
		HostConfig   struct {
			Init         *bool
			PortBindings map[string][]struct{ HostIp, HostPort string }
			PidsLimit    *int64
		}
	}
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Contains(t, got.ExposedPorts, "8080/tcp")
	require.NotNil(t, got.HostConfig.Init)
	assert.False(t, *got.HostConfig.Init)
	require.Len(t, got.HostConfig.PortBindings["8080/tcp"], 1)
	assert.Equal(t, "127.0.0.1", got.HostConfig.PortBindings["8080/tcp"][0].HostIp)
	assert.Equal(t, "", got.HostConfig.PortBindings["8080/tcp"][0].HostPort)
	assert.Equal(t, int64Ptr(256), got.HostConfig.PidsLimit)
}
