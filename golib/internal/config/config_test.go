package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantProblem is one expected Problem: runtime and element exactly, msg as a
// substring of the message.
type wantProblem struct {
	runtime, element, msg string
}

// rtID is the runtime id most fixtures use; their top-level backend is "b".
const rtID = "plc_python"

// readFixture returns the contents of testdata/name.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

// defaultBackends is the backend table of a file that declares none.
func defaultBackends() map[string]*Backend {
	return map[string]*Backend{"default": {Name: "default", Type: "docker"}}
}

// minimalRuntime is plc_python as most fixtures write it, with every default.
func minimalRuntime() *Runtime {
	return &Runtime{
		ID:           rtID,
		Image:        "python39.alpine:latest",
		Command:      "/clientdir/py3client.sh",
		MemoryMB:     1024,
		CPUShare:     1024,
		Backend:      "default",
		StartTimeout: 30 * time.Second,
	}
}

var validCases = []struct {
	file string
	want func() *Config
}{
	{
		file: "valid_minimal.xml",
		want: func() *Config {
			return &Config{
				Runtimes: map[string]*Runtime{rtID: minimalRuntime()},
				Order:    []string{rtID},
				Backends: defaultBackends(),
			}
		},
	},
	{
		file: "valid_full.xml",
		want: func() *Config {
			return &Config{
				Runtimes: map[string]*Runtime{
					"plc_python_gpu": {
						ID:      "plc_python_gpu",
						Image:   "python39.gpu:latest",
						Command: "/clientdir/py3client.sh",
						SharedDirs: []SharedDir{
							{Host: "/usr/local/greenplum-db/bin/plcontainer_clients", Container: "/clientdir", ReadOnly: true},
							{Host: "/data/share", Container: "/share", ReadOnly: false},
						},
						MemoryMB:            512,
						CPUShare:            2048,
						UseContainerLogging: true,
						EnableNetwork:       true,
						ResourceGroupID:     "16389",
						Roles:               []string{"analysts", "gpadmin"},
						Devices: []DeviceRequest{
							{Type: "gpu", All: true, Capabilities: []string{"compute", "utility", "gpu"}, Driver: "nvidia"},
							{Type: "gpu", DeviceIDs: []string{"0", "UUID=GPU-1234"}, Capabilities: []string{"gpu"}},
						},
						Backend:             "gpuhost",
						Prewarm:             2,
						IdleTimeout:         300 * time.Second,
						MaxContainers:       20,
						ReuseAcrossSessions: true,
						StartTimeout:        45 * time.Second,
					},
					"plc_r": {
						ID:           "plc_r",
						Image:        "r.alpine:latest",
						Command:      "/clientdir/rclient.sh",
						MemoryMB:     2048,
						CPUShare:     1024,
						Backend:      "local",
						StartTimeout: 30 * time.Second,
					},
				},
				Order: []string{"plc_python_gpu", "plc_r"},
				Backends: map[string]*Backend{
					"default": {Name: "default", Type: "docker"},
					"local":   {Name: "local", Type: "docker", Address: "/run/docker.sock"},
					"gpuhost": {
						Name:            "gpuhost",
						Type:            "remote_docker",
						Address:         "gpu.example.com",
						Port:            2376,
						Username:        "plc",
						Password:        "secret",
						AddSegmentIndex: true,
						TLSCA:           "/etc/plcoordinator/ca.pem",
						TLSCert:         "/etc/plcoordinator/cert.pem",
						TLSKey:          "/etc/plcoordinator/key.pem",
						TLSVerify:       true,
					},
					"spare": {Name: "spare", Type: "docker", Address: "unix:///var/run/docker.sock"},
				},
			}
		},
	},
	{
		file: "valid_default_override.xml",
		want: func() *Config {
			return &Config{
				Runtimes: map[string]*Runtime{rtID: minimalRuntime()},
				Order:    []string{rtID},
				Backends: map[string]*Backend{"default": {Name: "default", Type: "docker", Address: "/custom/docker.sock"}},
			}
		},
	},
	{
		file: "valid_remote_network_after_backend.xml",
		want: func() *Config {
			r := minimalRuntime()
			r.Backend = "remote"
			r.EnableNetwork = true
			r.Roles = []string{"plc"}
			b := defaultBackends()
			b["remote"] = &Backend{Name: "remote", Type: "remote_docker", Address: "docker.example.com", Port: 2375}
			return &Config{Runtimes: map[string]*Runtime{rtID: r}, Order: []string{rtID}, Backends: b}
		},
	},
	{
		file: "valid_id_max_length.xml",
		want: func() *Config {
			r := minimalRuntime()
			r.ID = strings.Repeat("a", 63)
			return &Config{Runtimes: map[string]*Runtime{r.ID: r}, Order: []string{r.ID}, Backends: defaultBackends()}
		},
	},
	{
		file: "valid_plcontainer_style.xml",
		want: func() *Config {
			clients := []SharedDir{{Host: "/usr/local/greenplum-db/bin/plcontainer_clients", Container: "/clientdir", ReadOnly: true}}
			return &Config{
				Runtimes: map[string]*Runtime{
					"plc_python3_shared": {
						ID:           "plc_python3_shared",
						Image:        "pivotaldata/plcontainer_python3_shared:devel",
						Command:      "/clientdir/py3client.sh",
						SharedDirs:   clients,
						MemoryMB:     1024,
						CPUShare:     1024,
						Roles:        []string{"gpadmin"},
						Backend:      "default",
						StartTimeout: 30 * time.Second,
					},
					"plc_r_shared": {
						ID:              "plc_r_shared",
						Image:           "pivotaldata/plcontainer_r_shared:devel",
						Command:         "/clientdir/rclient.sh",
						SharedDirs:      clients,
						MemoryMB:        256,
						CPUShare:        512,
						ResourceGroupID: "6438",
						Backend:         "default",
						StartTimeout:    30 * time.Second,
					},
					"a.b-c_9": {
						ID:           "a.b-c_9",
						Image:        "alpine",
						Command:      "/bin/true",
						MemoryMB:     1024,
						CPUShare:     1024,
						Backend:      "default",
						StartTimeout: 30 * time.Second,
					},
				},
				Order:    []string{"plc_python3_shared", "plc_r_shared", "a.b-c_9"},
				Backends: defaultBackends(),
			}
		},
	},
}

// TestConfig_ParseValid checks that valid files resolve to the expected
// structs, defaults included.
func TestConfig_ParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range validCases {
		t.Run("valid:"+strings.TrimSuffix(tc.file, ".xml"), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tc.file)
			cfg, err := Parse(path, readFixture(t, tc.file))
			require.NoError(t, err)
			want := tc.want()
			want.Path = path
			assert.Equal(t, want, cfg)
		})
	}
}

var invalidCases = []struct {
	file string
	want []wantProblem
}{
	// The document as a whole.
	{"malformed_xml.xml", []wantProblem{{"", "", "malformed XML: an element is not closed"}}},
	{"bad_syntax.xml", []wantProblem{{"", "", "malformed XML: XML syntax error on line 6"}}},
	{"empty_file.xml", []wantProblem{{"", "", "malformed XML: no root element"}}},
	{"wrong_root.xml", []wantProblem{{"", "configuration", "root element must be <configuration>, got <plcontainer>"}}},
	{"two_roots.xml", []wantProblem{{"", "", "malformed XML: more than one root element"}}},
	{"text_outside_root.xml", []wantProblem{{"", "", "malformed XML: text outside the root element"}}},
	{"xxe_entity.xml", []wantProblem{{"", "", "invalid character entity &xxe;"}}},
	{"nesting_too_deep.xml", []wantProblem{{"", "", "malformed XML: elements are nested more than 16 levels deep"}}},
	{"no_runtime.xml", []wantProblem{{"", "runtime", "did not find a single <runtime> declaration"}}},
	{"unknown_toplevel_element.xml", []wantProblem{{"", "plcontainer_settings", "unrecognized element <plcontainer_settings> inside <configuration>"}}},
	{"toplevel_text.xml", []wantProblem{{"", "configuration", `unexpected text "stray" inside <configuration>`}}},

	// <runtime> and its text elements.
	{"missing_id.xml", []wantProblem{{"#1", "id", "missing <id> element, exactly one is required"}}},
	{"two_ids.xml", []wantProblem{{rtID, "id", "more than one <id> element, exactly one is required"}}},
	{"empty_id.xml", []wantProblem{{"#1", "id", "runtime id must not be empty"}}},
	{"id_too_long.xml", []wantProblem{{strings.Repeat("a", 64), "id", "runtime id must not be longer than 63 bytes, got 64 bytes"}}},
	{"id_bad_chars.xml", []wantProblem{{"plc python", "id", `runtime id "plc python" contains an illegal character`}}},
	{"id_bad_first_char.xml", []wantProblem{{"_plc", "id", `runtime id "_plc" contains an illegal character`}}},
	{"dup_runtime_id.xml", []wantProblem{{rtID, "id", `duplicate runtime id "plc_python", already declared by runtime #1`}}},
	{"missing_image.xml", []wantProblem{{rtID, "image", "missing <image> element, exactly one is required"}}},
	{"two_images.xml", []wantProblem{{rtID, "image", "more than one <image> element, exactly one is required"}}},
	{"empty_image.xml", []wantProblem{{rtID, "image", "<image> must not be empty"}}},
	{"missing_command.xml", []wantProblem{{rtID, "command", "missing <command> element, exactly one is required"}}},
	{"two_commands.xml", []wantProblem{{rtID, "command", "more than one <command> element, exactly one is required"}}},
	{"empty_command.xml", []wantProblem{{rtID, "command", "<command> must not be empty"}}},
	{"unknown_element.xml", []wantProblem{{rtID, "memory", "unrecognized element <memory> inside <runtime>"}}},
	{"unknown_runtime_attribute.xml", []wantProblem{{rtID, "runtime@id", "unrecognized attribute id, the id is a child element"}}},
	{"element_in_text.xml", []wantProblem{{rtID, "image", "unexpected element <tag> inside <image>"}}},
	{"runtime_text.xml", []wantProblem{{rtID, "runtime", `unexpected text "oops" inside <runtime>`}}},
	{"dup_attribute.xml", []wantProblem{{rtID, "setting@memory_mb", "attribute memory_mb is given more than once"}}},

	// <setting>.
	{"bad_memory_mb.xml", []wantProblem{{rtID, "setting@memory_mb", `container memory size must be greater than 0, got "-5"`}}},
	{"memory_mb_zero.xml", []wantProblem{{rtID, "setting@memory_mb", `container memory size must be greater than 0, got "0"`}}},
	{"memory_mb_non_numeric.xml", []wantProblem{{rtID, "setting@memory_mb", `container memory size must be an integer, got "1g"`}}},
	{"memory_mb_too_large.xml", []wantProblem{{rtID, "setting@memory_mb", `container memory size must be at most 2147483647, got "2147483648"`}}},
	{"bad_cpu_share.xml", []wantProblem{{rtID, "setting@cpu_share", `container cpu share must be greater than 0, got "0"`}}},
	{"cpu_share_non_numeric.xml", []wantProblem{{rtID, "setting@cpu_share", `container cpu share must be an integer, got "high"`}}},
	{"bad_use_container_logging.xml", []wantProblem{{rtID, "setting@use_container_logging", `use_container_logging must be "yes" or "no", got "true"`}}},
	{"bad_enable_network.xml", []wantProblem{{rtID, "setting@enable_network", `enable_network must be "yes" or "no", got "on"`}}},
	{"empty_resource_group_id.xml", []wantProblem{{rtID, "setting@resource_group_id", "resource_group_id must not be empty"}}},
	{"resource_group_id_non_digits.xml", []wantProblem{{rtID, "setting@resource_group_id", `resource_group_id must contain digits only, got "admin_group"`}}},
	{"resource_group_id_zero.xml", []wantProblem{{rtID, "setting@resource_group_id", `resource_group_id must be greater than 0, got "000"`}}},
	{"resource_group_id_too_large.xml", []wantProblem{{rtID, "setting@resource_group_id", `resource_group_id must be at most 4294967295, got "4294967296"`}}},
	{"empty_roles.xml", []wantProblem{{rtID, "setting@roles", "roles must not be empty"}}},
	{"roles_empty_item.xml", []wantProblem{{rtID, "setting@roles", `roles must not contain an empty role name, got "alice,,bob"`}}},
	{"setting_no_attribute.xml", []wantProblem{{rtID, "setting", "<setting> has no attribute, expected one of memory_mb, cpu_share, use_container_logging, enable_network, resource_group_id, roles"}}},
	{"setting_unknown_attribute.xml", []wantProblem{{rtID, "setting@memroy_mb", "unrecognized attribute memroy_mb"}}},
	{"setting_legacy_network.xml", []wantProblem{{rtID, "setting@use_container_network", "unrecognized attribute use_container_network, it was removed from PL/Container: use enable_network"}}},
	{"setting_content.xml", []wantProblem{{rtID, "setting", `unexpected text "512" inside <setting>`}}},
	{"setting_child_element.xml", []wantProblem{{rtID, "setting", "unexpected element <memory_mb> inside <setting>"}}},

	// <shared_directory>.
	{"shared_dir_missing_attributes.xml", []wantProblem{
		{rtID, "shared_directory@host", "missing mandatory attribute host"},
		{rtID, "shared_directory@container", "missing mandatory attribute container"},
		{rtID, "shared_directory@access", "missing mandatory attribute access"},
	}},
	{"bad_access.xml", []wantProblem{{rtID, "shared_directory@access", `access must be "ro" or "rw", got "RW"`}}},
	{"reserved_container_path.xml", []wantProblem{
		{rtID, "shared_directory@container", `container path "/tmp/plcontainer" is reserved for the client's socket directory`},
		{rtID, "shared_directory@container", `container path "/tmp/plcontainer/" is reserved for the client's socket directory`},
	}},
	{"dup_container_path.xml", []wantProblem{{rtID, "shared_directory@container", `container path "/DATA/" is already used by another <shared_directory>`}}},
	{"empty_host_path.xml", []wantProblem{{rtID, "shared_directory@host", "host path must not be empty"}}},
	{"relative_host_path.xml", []wantProblem{{rtID, "shared_directory@host", `host path must be absolute, got "data"`}}},
	{"relative_container_path.xml", []wantProblem{{rtID, "shared_directory@container", `container path must be absolute, got "data"`}}},
	{"colon_in_path.xml", []wantProblem{{rtID, "shared_directory@host", `host path must not contain ':', got "/data:/etc"`}}},
	{"shared_dir_unknown_attribute.xml", []wantProblem{{rtID, "shared_directory@mode", "unrecognized attribute mode"}}},

	// <device_request>.
	{"device_no_type.xml", []wantProblem{{rtID, "device_request@type", "missing mandatory attribute type"}}},
	{"device_empty_type.xml", []wantProblem{{rtID, "device_request@type", "type must not be empty"}}},
	{"device_unknown_child.xml", []wantProblem{{rtID, "device_request/count", "unrecognized element <count> inside <device_request>"}}},
	{"device_two_drivers.xml", []wantProblem{{rtID, "device_request/driver", "more than one <driver> element, at most one is allowed"}}},
	{"device_all_with_ids.xml", []wantProblem{{rtID, "device_request@all", "attribute all must not be combined with <deviceid> elements"}}},
	{"device_empty_deviceid.xml", []wantProblem{{rtID, "device_request/deviceid", "<deviceid> must not be empty"}}},

	// <backend name> inside a runtime.
	{"runtime_backend_no_name.xml", []wantProblem{{rtID, "backend@name", "missing mandatory attribute name"}}},
	{"runtime_backend_empty_name.xml", []wantProblem{{rtID, "backend@name", "backend name must not be empty"}}},
	{"unknown_backend.xml", []wantProblem{{rtID, "backend@name", `unknown backend "gpu", no top-level <backend> has this name`}}},
	{"two_runtime_backends.xml", []wantProblem{{rtID, "backend", "more than one <backend> element, at most one is allowed"}}},
	{"remote_without_network.xml", []wantProblem{{rtID, "setting@enable_network", `enable_network must be "yes" when the runtime uses remote_docker backend "remote"`}}},
	{"remote_default_without_network.xml", []wantProblem{{rtID, "setting@enable_network", `enable_network must be "yes" when the runtime uses remote_docker backend "default"`}}},

	// Top-level <backend>.
	{"backend_no_name.xml", []wantProblem{{"", "backend@name", "backend #1: missing mandatory attribute name"}}},
	{"backend_empty_name.xml", []wantProblem{{"", "backend@name", "backend #1: backend name must not be empty"}}},
	{"backend_no_type.xml", []wantProblem{{"", "backend@type", `backend "b": missing mandatory attribute type`}}},
	{"backend_bad_type.xml", []wantProblem{{"", "backend@type", `backend "b": type must be one of "docker", "local_docker", "remote_docker", got "podman"`}}},
	{"backend_unknown_attribute.xml", []wantProblem{{"", "backend@host", `backend "b": unrecognized attribute host`}}},
	{"docker_backend_no_address.xml", []wantProblem{{"", "backend/address", `backend "b": missing <address> element, required for a docker backend`}}},
	{"backend_empty_address.xml", []wantProblem{{"", "backend/address", `backend "b": <address> must not be empty`}}},
	{"remote_backend_no_address.xml", []wantProblem{{"", "backend/address", `backend "b": missing <address> element, required for a remote_docker backend`}}},
	{"remote_backend_no_port.xml", []wantProblem{{"", "backend/port", `backend "b": missing <port> element, required for a remote_docker backend`}}},
	{"bad_port.xml", []wantProblem{{"", "backend/port", `backend "b": port must be between 1 and 65535, got "70000"`}}},
	{"port_non_numeric.xml", []wantProblem{{"", "backend/port", `backend "b": port must be an integer, got "http"`}}},
	{"username_without_password.xml", []wantProblem{{"", "backend/password", `backend "b": <username> requires <password>, give both or neither`}}},
	{"password_without_username.xml", []wantProblem{{"", "backend/username", `backend "b": <password> requires <username>, give both or neither`}}},
	{"bad_add_segment_index.xml", []wantProblem{{"", "backend/add_segment_index", `backend "b": add_segment_index must be one of "yes", "no", "true", "false", "1", "0", got "maybe"`}}},
	{"dup_backend_child.xml", []wantProblem{{"", "backend/address", `backend "b": duplicate <address> element`}}},
	{"dup_backend_name.xml", []wantProblem{{"", "backend@name", `backend "b": duplicate backend name`}}},
	{"backend_unknown_child.xml", []wantProblem{{"", "backend/timeout", `backend "b": unrecognized element <timeout> inside <backend>`}}},
	{"docker_backend_remote_child.xml", []wantProblem{{"", "backend/port", `backend "b": <port> is only valid for a remote_docker backend`}}},
	{"bad_tls_verify.xml", []wantProblem{{"", "backend/tls_verify", `backend "b": tls_verify must be "yes" or "no", got "true"`}}},
	{"tls_cert_without_key.xml", []wantProblem{{"", "backend/tls_key", `backend "b": <tls_cert> requires <tls_key>, give both or neither`}}},

	// <coordinator>.
	{"two_coordinators.xml", []wantProblem{{rtID, "coordinator", "more than one <coordinator> element, at most one is allowed"}}},
	{"bad_prewarm.xml", []wantProblem{{rtID, "coordinator@prewarm", `prewarm must be between 0 and 100, got "101"`}}},
	{"prewarm_non_numeric.xml", []wantProblem{{rtID, "coordinator@prewarm", `prewarm must be an integer, got "two"`}}},
	{"bad_idle_timeout.xml", []wantProblem{{rtID, "coordinator@idle_timeout", `idle_timeout (seconds) must be between 0 and 86400, got "86401"`}}},
	{"bad_max_containers.xml", []wantProblem{{rtID, "coordinator@max_containers", `max_containers must be between 0 and 100000, got "-1"`}}},
	{"bad_start_timeout.xml", []wantProblem{{rtID, "coordinator@start_timeout", `start_timeout (seconds) must be between 1 and 600, got "0"`}}},
	{"bad_reuse_across_sessions.xml", []wantProblem{{rtID, "coordinator@reuse_across_sessions", `reuse_across_sessions must be "yes" or "no", got "true"`}}},
	{"coordinator_unknown_attribute.xml", []wantProblem{{rtID, "coordinator@warm", "unrecognized attribute warm"}}},
	{"prewarm_exceeds_max.xml", []wantProblem{{rtID, "coordinator@prewarm", "prewarm (5) must not be greater than max_containers (2)"}}},

	// Everything at once: no problem may hide another.
	{"many_problems.xml", []wantProblem{
		{"", "backend/port", `backend "remote": port must be between 1 and 65535, got "0"`},
		{"", "backend@type", `backend "broken": type must be one of`},
		{rtID, "setting@memory_mb", `container memory size must be greater than 0, got "-5"`},
		{rtID, "setting@cpu_share", `container cpu share must be an integer, got "abc"`},
		{rtID, "setting@enable_network", `enable_network must be "yes" or "no", got "maybe"`},
		{rtID, "shared_directory@container", `container path "/tmp/plcontainer" is reserved`},
		{rtID, "command", "missing <command> element"},
		{rtID, "setting@enable_network", `enable_network must be "yes" when the runtime uses remote_docker backend "remote"`},
		{rtID, "backend@name", `unknown backend "nowhere"`},
		{rtID, "coordinator@start_timeout", `start_timeout (seconds) must be between 1 and 600, got "601"`},
		{rtID, "id", `duplicate runtime id "plc_python", already declared by runtime #1`},
		{"#3", "gpu", "unrecognized element <gpu> inside <runtime>"},
		{"#3", "id", "missing <id> element"},
	}},
}

// TestConfig_ParseInvalid checks that every rule reports exactly the
// expected problems, and nothing else, for its fixture.
func TestConfig_ParseInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range invalidCases {
		t.Run("invalid:"+strings.TrimSuffix(tc.file, ".xml"), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tc.file)
			cfg, err := Parse(path, readFixture(t, tc.file))
			require.Error(t, err)
			assert.Nil(t, cfg)
			var cerr *Error
			require.ErrorAs(t, err, &cerr)
			assert.Equal(t, path, cerr.Path)
			requireProblems(t, tc.want, cerr.Problems)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

// requireProblems compares problems with want, in order.
func requireProblems(t *testing.T, want []wantProblem, got []Problem) {
	t.Helper()
	var gotText []string
	for _, p := range got {
		gotText = append(gotText, p.String())
	}
	require.Len(t, got, len(want), "problems:\n%s", strings.Join(gotText, "\n"))
	for i, w := range want {
		assert.Equal(t, w.runtime, got[i].Runtime, "problem %d runtime: %s", i, gotText[i])
		assert.Equal(t, w.element, got[i].Element, "problem %d element: %s", i, gotText[i])
		assert.Contains(t, got[i].Message, w.msg, "problem %d message", i)
		assert.Equal(t, strings.ToLower(got[i].Message[:1]), got[i].Message[:1], "problem %d: message must start lower-case", i)
		period := strings.HasSuffix(got[i].Message, ".") && !strings.HasSuffix(got[i].Message, "...")
		assert.False(t, period, "problem %d: message must not end with a period", i)
	}
}

// TestConfig_EveryFixtureIsTested keeps testdata/ and the tables in step.
func TestConfig_EveryFixtureIsTested(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	require.NoError(t, err)
	var tested []string
	for _, tc := range validCases {
		tested = append(tested, tc.file)
	}
	for _, tc := range invalidCases {
		require.False(t, strings.HasPrefix(tc.file, "valid_"), tc.file)
		tested = append(tested, tc.file)
	}
	for _, f := range files {
		assert.Contains(t, tested, filepath.Base(f), "fixture without a test case")
	}
	slices.Sort(tested)
	assert.Len(t, slices.Compact(tested), len(tested), "a fixture is listed twice")
}

// TestConfig_ParseLimits covers the size cap and the nesting limit, whose
// inputs are generated rather than stored.
func TestConfig_ParseLimits(t *testing.T) {
	t.Parallel()
	minimal := string(readFixture(t, "valid_minimal.xml"))
	nested := func(depth int) []byte {
		// configuration and runtime are two levels, the rest unknown elements.
		inner := strings.Repeat("<x>", depth-2) + strings.Repeat("</x>", depth-2)
		return []byte(strings.Replace(minimal, "</runtime>", inner+"</runtime>", 1))
	}
	cases := []struct {
		name string
		data []byte
		want []wantProblem
	}{
		{
			name: "larger_than_4MiB",
			data: []byte(strings.Replace(minimal, "</configuration>", strings.Repeat(" ", MaxFileSize)+"</configuration>", 1)),
			want: []wantProblem{{"", "", "file is larger than the limit of 4194304 bytes (4 MiB)"}},
		},
		{
			name: "nesting_at_limit",
			data: nested(maxDepth),
			want: []wantProblem{{rtID, "x", "unrecognized element <x> inside <runtime>"}},
		},
		{
			name: "nesting_beyond_limit",
			data: nested(maxDepth + 1),
			want: []wantProblem{{"", "", "elements are nested more than 16 levels deep"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("gen.xml", tc.data)
			var cerr *Error
			require.ErrorAs(t, err, &cerr)
			requireProblems(t, tc.want, cerr.Problems)
		})
	}

	t.Run("exactly_4MiB_is_accepted", func(t *testing.T) {
		t.Parallel()
		pad := MaxFileSize - len(minimal)
		data := []byte(strings.Replace(minimal, "</configuration>", strings.Repeat(" ", pad)+"</configuration>", 1))
		require.Len(t, data, MaxFileSize)
		_, err := Parse("gen.xml", data)
		require.NoError(t, err)
	})
}

// TestConfig_Load covers reading from disk: a missing file is an empty
// configuration, other read failures are plain errors, validation failures
// are *Error.
func TestConfig_Load(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.xml")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxFileSize+100), 0o600))

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "does-not-exist.xml")
		cfg, err := Load(path)
		require.NoError(t, err)
		assert.Equal(t, &Config{
			Path:     path,
			Missing:  true,
			Runtimes: map[string]*Runtime{},
			Backends: defaultBackends(),
		}, cfg)
		assert.Empty(t, cfg.Order)
	})

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join("testdata", "valid_minimal.xml")
		cfg, err := Load(path)
		require.NoError(t, err)
		assert.Equal(t, &Config{
			Path:     path,
			Runtimes: map[string]*Runtime{rtID: minimalRuntime()},
			Order:    []string{rtID},
			Backends: defaultBackends(),
		}, cfg)
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join("testdata", "bad_memory_mb.xml")
		cfg, err := Load(path)
		assert.Nil(t, cfg)
		var cerr *Error
		require.ErrorAs(t, err, &cerr)
		assert.Equal(t, path, cerr.Path)
		require.Len(t, cerr.Problems, 1)
	})

	t.Run("too_large", func(t *testing.T) {
		t.Parallel()
		_, err := Load(big)
		var cerr *Error
		require.ErrorAs(t, err, &cerr)
		requireProblems(t, []wantProblem{{"", "", "file is larger than the limit"}}, cerr.Problems)
	})

	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(dir)
		require.Error(t, err)
		assert.Nil(t, cfg)
		var cerr *Error
		assert.False(t, errors.As(err, &cerr), "a read failure is not a validation error")
	})

	t.Run("parent_is_a_file", func(t *testing.T) {
		t.Parallel()
		// ENOTDIR is not ENOENT: the path is wrong, not the file absent.
		cfg, err := Load(filepath.Join(big, "plcontainer_configuration.xml"))
		require.Error(t, err)
		assert.Nil(t, cfg)
	})
}

// TestRuntime_UserControl checks PL/Container's rule for restricted runtimes.
func TestRuntime_UserControl(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		modify func(r *Runtime)
		want   bool
	}{
		{"defaults", func(*Runtime) {}, false},
		{"roles", func(r *Runtime) { r.Roles = []string{"plc"} }, true},
		{"network", func(r *Runtime) { r.EnableNetwork = true }, true},
		{"device", func(r *Runtime) { r.Devices = []DeviceRequest{{Type: "gpu", All: true}} }, true},
		{"logging_and_limits_only", func(r *Runtime) { r.UseContainerLogging = true; r.MemoryMB = 1; r.ResourceGroupID = "7" }, false},
		{"empty_roles_slice", func(r *Runtime) { r.Roles = []string{} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := minimalRuntime()
			tc.modify(r)
			assert.Equal(t, tc.want, r.UserControl())
		})
	}

	t.Run("from_file", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse("full.xml", readFixture(t, "valid_full.xml"))
		require.NoError(t, err)
		assert.True(t, cfg.Runtimes["plc_python_gpu"].UserControl())
		assert.False(t, cfg.Runtimes["plc_r"].UserControl())
	})
}

// TestRuntime_Equal changes one field at a time; every change must make the
// runtimes differ.
func TestRuntime_Equal(t *testing.T) {
	t.Parallel()
	full := func() *Runtime {
		cfg, err := Parse("full.xml", readFixture(t, "valid_full.xml"))
		require.NoError(t, err)
		return cfg.Runtimes["plc_python_gpu"]
	}
	cases := []struct {
		name   string
		modify func(r *Runtime)
		want   bool
	}{
		{"same", func(*Runtime) {}, true},
		{"id", func(r *Runtime) { r.ID = "x" }, false},
		{"image", func(r *Runtime) { r.Image = "x" }, false},
		{"command", func(r *Runtime) { r.Command = "x" }, false},
		{"shared_dir_mode", func(r *Runtime) { r.SharedDirs[1].ReadOnly = true }, false},
		{"shared_dir_removed", func(r *Runtime) { r.SharedDirs = r.SharedDirs[:1] }, false},
		{"memory", func(r *Runtime) { r.MemoryMB++ }, false},
		{"cpu", func(r *Runtime) { r.CPUShare++ }, false},
		{"logging", func(r *Runtime) { r.UseContainerLogging = false }, false},
		{"network", func(r *Runtime) { r.EnableNetwork = false }, false},
		{"resource_group", func(r *Runtime) { r.ResourceGroupID = "" }, false},
		{"roles", func(r *Runtime) { r.Roles = []string{"gpadmin", "analysts"} }, false},
		{"device_type", func(r *Runtime) { r.Devices[0].Type = "fpga" }, false},
		{"device_all", func(r *Runtime) { r.Devices[1].All = true }, false},
		{"device_ids", func(r *Runtime) { r.Devices[1].DeviceIDs = []string{"0"} }, false},
		{"device_capabilities", func(r *Runtime) { r.Devices[0].Capabilities = []string{"gpu"} }, false},
		{"device_driver", func(r *Runtime) { r.Devices[0].Driver = "" }, false},
		{"devices_removed", func(r *Runtime) { r.Devices = nil }, false},
		{"backend", func(r *Runtime) { r.Backend = "default" }, false},
		{"prewarm", func(r *Runtime) { r.Prewarm = 0 }, false},
		{"idle_timeout", func(r *Runtime) { r.IdleTimeout = time.Second }, false},
		{"max_containers", func(r *Runtime) { r.MaxContainers = 0 }, false},
		{"reuse", func(r *Runtime) { r.ReuseAcrossSessions = false }, false},
		{"start_timeout", func(r *Runtime) { r.StartTimeout = time.Minute }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := full(), full()
			tc.modify(b)
			assert.Equal(t, tc.want, a.Equal(b))
			assert.Equal(t, tc.want, b.Equal(a), "Equal must be symmetric")
		})
	}

	t.Run("nil_and_empty_slices", func(t *testing.T) {
		t.Parallel()
		a, b := minimalRuntime(), minimalRuntime()
		b.Roles, b.SharedDirs, b.Devices = []string{}, []SharedDir{}, []DeviceRequest{}
		assert.True(t, a.Equal(b))
	})

	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		var a, b *Runtime
		assert.True(t, a.Equal(b))
		assert.False(t, a.Equal(minimalRuntime()))
		assert.False(t, minimalRuntime().Equal(nil))
	})

	t.Run("reparse_is_equal", func(t *testing.T) {
		t.Parallel()
		assert.True(t, full().Equal(full()))
	})
}

// TestBackend_Equal checks the companion of Runtime.Equal used on reload.
func TestBackend_Equal(t *testing.T) {
	t.Parallel()
	a := &Backend{Name: "r", Type: "remote_docker", Address: "h", Port: 2375, TLSVerify: true}
	b := *a
	assert.True(t, a.Equal(&b))
	b.Port = 2376
	assert.False(t, a.Equal(&b))
	var n *Backend
	assert.True(t, n.Equal(nil))
	assert.False(t, a.Equal(nil))
}

// TestError_Format checks the one-line renderings of Problem and Error.
func TestError_Format(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    Problem
		want string
	}{
		{
			name: "runtime_attribute",
			p:    Problem{Runtime: "plc_python", Element: "setting@memory_mb", Message: `container memory size must be greater than 0, got "-5"`},
			want: `runtime "plc_python": <setting memory_mb>: container memory size must be greater than 0, got "-5"`,
		},
		{
			name: "position_label",
			p:    Problem{Runtime: "#3", Element: "id", Message: "missing <id> element, exactly one is required"},
			want: `runtime #3: <id>: missing <id> element, exactly one is required`,
		},
		{
			name: "nested_element",
			p:    Problem{Runtime: "plc_python", Element: "device_request/deviceid", Message: "<deviceid> must not be empty"},
			want: `runtime "plc_python": <device_request><deviceid>: <deviceid> must not be empty`,
		},
		{
			name: "file_level",
			p:    Problem{Element: "backend/port", Message: `backend "b": port must be an integer, got "x"`},
			want: `<backend><port>: backend "b": port must be an integer, got "x"`,
		},
		{
			name: "document",
			p:    Problem{Message: "malformed XML: no root element"},
			want: "malformed XML: no root element",
		},
		{
			name: "odd_runtime_id_is_quoted",
			p:    Problem{Runtime: "a\nb", Element: "id", Message: "m"},
			want: `runtime "a\nb": <id>: m`,
		},
		{
			name: "hash_id_is_quoted",
			p:    Problem{Runtime: "#x", Element: "id", Message: "m"},
			want: `runtime "#x": <id>: m`,
		},
		{
			name: "long_runtime_id_is_shortened",
			p:    Problem{Runtime: strings.Repeat("a", 100), Element: "id", Message: "m"},
			want: `runtime "` + strings.Repeat("a", 80) + `"...: <id>: m`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.p.String())
		})
	}

	t.Run("error_one_problem", func(t *testing.T) {
		t.Parallel()
		e := &Error{Path: "/data/plcontainer_configuration.xml", Problems: []Problem{{Message: "malformed XML: no root element"}}}
		assert.Equal(t, `configuration file "/data/plcontainer_configuration.xml" has 1 problem: malformed XML: no root element`, e.Error())
	})

	t.Run("error_from_file", func(t *testing.T) {
		t.Parallel()
		_, err := Parse("f.xml", readFixture(t, "shared_dir_missing_attributes.xml"))
		require.Error(t, err)
		assert.Equal(t, `configuration file "f.xml" has 3 problems: `+
			`runtime "plc_python": <shared_directory host>: missing mandatory attribute host; `+
			`runtime "plc_python": <shared_directory container>: missing mandatory attribute container; `+
			`runtime "plc_python": <shared_directory access>: missing mandatory attribute access`, err.Error())
	})
}

// TestQuote checks that shortening never splits a UTF-8 sequence.
func TestQuote(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("a", maxQuoted-1) + "é" + "tail"
	assert.Equal(t, `"`+strings.Repeat("a", maxQuoted-1)+`"...`, quote(s))
	assert.Equal(t, `"short"`, quote("short"))
	assert.Equal(t, strings.Repeat("a", maxQuoted-1)+"...", shorten(s))
	assert.Equal(t, "short", shorten("short"))
}

// TestConfig_LongNames checks that absurdly long element and attribute
// names are shortened in problems.
func TestConfig_LongNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200)
	data := strings.Replace(string(readFixture(t, "valid_minimal.xml")), "</runtime>",
		"<"+long+"/><setting "+long+`="1"/></runtime>`, 1)
	_, err := Parse("long.xml", []byte(data))
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	short := strings.Repeat("x", maxQuoted) + "..."
	requireProblems(t, []wantProblem{
		{rtID, short, "unrecognized element <" + short + "> inside <runtime>"},
		{rtID, "setting@" + short, "unrecognized attribute " + short},
	}, cerr.Problems)
}

// TestDescribeXMLError checks that decoder errors stay on one line.
func TestDescribeXMLError(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "a b c", describeXMLError(errors.New("a\nb\x01c")))
}
