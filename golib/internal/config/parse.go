package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// maxDepth bounds element nesting. The schema itself is four levels deep
// (configuration/runtime/device_request/deviceid); the margin lets unknown
// elements be reported as such rather than as malformed XML.
const maxDepth = 16

// Attribute sets of the attribute-only elements, in the order the package
// documentation lists them.
var (
	settingAttrs     = []string{"memory_mb", "cpu_share", "use_container_logging", "enable_network", "resource_group_id", "roles"}
	sharedDirAttrs   = []string{"host", "container", "access"}
	deviceAttrs      = []string{"type", "all"}
	coordinatorAttrs = []string{"prewarm", "idle_timeout", "max_containers", "reuse_across_sessions", "start_timeout"}
)

// backendChild describes one child element of a top-level <backend>.
type backendChild struct {
	tag        string
	remoteOnly bool // a docker (Unix socket) backend must not have it
}

// backendChildren lists the child elements of a top-level <backend>.
var backendChildren = []backendChild{
	{"address", false},
	{"port", true},
	{"username", true},
	{"password", true},
	{"add_segment_index", true},
	{"tls_ca", true},
	{"tls_cert", true},
	{"tls_key", true},
	{"tls_verify", true},
}

// attrHints completes the "unrecognized attribute" message of attributes
// administrators are known to write by mistake, keyed by element@attribute.
var attrHints = map[string]string{
	"setting@use_container_network": ", it was removed from PL/Container: use enable_network",
	"setting@role":                  ", did you mean roles",
	"runtime@id":                    ", the id is a child element: <id>...</id>",
}

// Load reads and parses the configuration file at path. A file that does not
// exist is not an error: Load returns a Config with Missing set, no runtimes
// and the built-in default backend. Other read errors are returned as they
// are; validation failures are returned as *Error.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{
			Path:     path,
			Missing:  true,
			Runtimes: map[string]*Runtime{},
			Backends: map[string]*Backend{DefaultBackendName: newDefaultBackend()},
		}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so that Parse sees an oversized file as
	// such without Load holding all of it in memory.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates the contents of a configuration file; path is
// only used in the result and in messages. It returns either a valid Config
// or an *Error listing every problem of the file, never both.
func Parse(path string, data []byte) (*Config, error) {
	p := &parser{}
	cfg := p.document(data)
	if len(p.problems) > 0 {
		return nil, &Error{Path: path, Problems: p.problems}
	}
	cfg.Path = path
	return cfg, nil
}

// parser collects the problems of one file.
type parser struct {
	problems []Problem
}

// scope says where a problem is: the runtime label for Problem.Runtime and
// a prefix for the message (`backend "x": ` inside top-level backends).
type scope struct {
	runtime string
	prefix  string
}

// add records a problem at element elem of scope s.
func (p *parser) add(s scope, elem, format string, args ...any) {
	p.problems = append(p.problems, Problem{
		Runtime: s.runtime,
		Element: elem,
		Message: s.prefix + fmt.Sprintf(format, args...),
	})
}

// document parses the XML and validates the <configuration> root.
func (p *parser) document(data []byte) *Config {
	if len(data) > MaxFileSize {
		p.add(scope{}, "", "file is larger than the limit of %d bytes (4 MiB)", MaxFileSize)
		return nil
	}
	doc := etree.NewDocument()
	// Duplicate attributes are kept so that they can be reported. The
	// decoder is strict and has no entity map: a DOCTYPE is kept as an inert
	// directive and any entity other than the five predefined ones is a
	// syntax error, so nothing is ever fetched or expanded.
	doc.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, MaxDepth: maxDepth}
	if err := doc.ReadFromBytes(data); err != nil {
		p.add(scope{}, "", "malformed XML: %s", describeXMLError(err))
		return nil
	}
	var root *etree.Element
	for _, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if root != nil {
				p.add(scope{}, "", "malformed XML: more than one root element")
				return nil
			}
			root = t
		case *etree.CharData:
			if !isBlank(t.Data) {
				p.add(scope{}, "", "malformed XML: text outside the root element")
				return nil
			}
		}
	}
	if root == nil {
		p.add(scope{}, "", "malformed XML: no root element")
		return nil
	}
	if root.FullTag() != "configuration" {
		p.add(scope{}, "configuration", "root element must be <configuration>, got <%s>", tagOf(root))
		return nil
	}
	return p.configuration(root)
}

// describeXMLError turns a parse error into the text after "malformed XML: ".
func describeXMLError(err error) string {
	switch {
	case errors.Is(err, etree.ErrXML):
		return "an element is not closed, or is closed by the wrong end tag"
	case errors.Is(err, etree.ErrMaxDepth):
		return fmt.Sprintf("elements are nested more than %d levels deep", maxDepth)
	}
	// Keep the message on one line whatever the decoder quotes from the input.
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, err.Error())
}

// configuration validates the children of the root: the top-level backends
// first, wherever they are in the file (runtimes refer to them), then the
// runtimes. Attributes of the root are ignored, as PL/Container does.
func (p *parser) configuration(root *etree.Element) *Config {
	cfg := &Config{
		Runtimes: map[string]*Runtime{},
		Backends: map[string]*Backend{DefaultBackendName: newDefaultBackend()},
	}
	declared := map[string]bool{} // backend names declared in the file
	var runtimes []*etree.Element
	nBackends := 0
	for _, tok := range root.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			p.unexpectedText(scope{}, "configuration", t)
		case *etree.Element:
			switch tag := t.FullTag(); tag {
			case "backend":
				nBackends++
				p.backend(cfg, t, nBackends, declared)
			case "runtime":
				runtimes = append(runtimes, t)
			default:
				p.add(scope{}, tagOf(t), "unrecognized element <%s> inside <configuration>", tagOf(t))
			}
		}
	}
	if len(runtimes) == 0 {
		p.add(scope{}, "runtime", "did not find a single <runtime> declaration")
	}
	firstByID := map[string]int{}
	for i, el := range runtimes {
		r, s := p.runtime(cfg, el, i+1)
		if r.ID == "" {
			continue
		}
		if first, dup := firstByID[r.ID]; dup {
			p.add(s, "id", "duplicate runtime id %s, already declared by runtime #%d", quote(r.ID), first)
			continue
		}
		firstByID[r.ID] = i + 1
		cfg.Runtimes[r.ID] = r
		cfg.Order = append(cfg.Order, r.ID)
	}
	return cfg
}

// runtime validates the n-th <runtime> element (1-based) and returns it
// with the scope its problems were reported in.
func (p *parser) runtime(cfg *Config, el *etree.Element, n int) (*Runtime, scope) {
	s := scope{runtime: positionLabel(n)}
	for _, c := range el.ChildElements() {
		if c.FullTag() == "id" {
			if v := rawText(c); v != "" {
				s.runtime = v
			}
			break
		}
	}
	r := newRuntime()
	p.attrs(s, "runtime", el)

	var nID, nImage, nCommand, nBackend, nCoordinator int
	mounts := map[string]bool{}
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			p.unexpectedText(s, "runtime", t)
		case *etree.Element:
			switch tag := t.FullTag(); tag {
			case "id":
				nID++
				v := p.text(s, "id", t)
				if nID == 1 {
					if msg := checkRuntimeID(v); msg != "" {
						p.add(s, "id", "%s", msg)
					}
					r.ID = v
				}
			case "image":
				nImage++
				r.Image = p.requiredText(s, "image", t)
			case "command":
				nCommand++
				r.Command = p.requiredText(s, "command", t)
			case "setting":
				p.setting(s, r, t)
			case "shared_directory":
				p.sharedDirectory(s, r, t, mounts)
			case "device_request":
				p.deviceRequest(s, r, t)
			case "backend":
				nBackend++
				if nBackend == 2 {
					p.add(s, "backend", "more than one <backend> element, at most one is allowed")
				}
				if name := p.runtimeBackend(s, cfg, t); name != "" && nBackend == 1 {
					r.Backend = name
				}
			case "coordinator":
				nCoordinator++
				if nCoordinator == 2 {
					p.add(s, "coordinator", "more than one <coordinator> element, at most one is allowed")
				}
				p.coordinator(s, r, t)
			default:
				p.add(s, tagOf(t), "unrecognized element <%s> inside <runtime>", tagOf(t))
			}
		}
	}
	for _, c := range []struct {
		tag string
		n   int
	}{{"id", nID}, {"image", nImage}, {"command", nCommand}} {
		switch {
		case c.n == 0:
			p.add(s, c.tag, "missing <%s> element, exactly one is required", c.tag)
		case c.n > 1:
			p.add(s, c.tag, "more than one <%s> element, exactly one is required", c.tag)
		}
	}

	// Checks across elements run after the whole runtime has been read, so
	// the order of its children does not matter.
	if b := cfg.Backends[r.Backend]; b != nil && b.Type == BackendRemoteDocker && !r.EnableNetwork {
		p.add(s, "setting@enable_network", `enable_network must be "yes" when the runtime uses remote_docker backend %s`, quote(r.Backend))
	}
	if r.MaxContainers > 0 && r.Prewarm > r.MaxContainers {
		p.add(s, "coordinator@prewarm", "prewarm (%d) must not be greater than max_containers (%d)", r.Prewarm, r.MaxContainers)
	}
	return r, s
}

// requiredText validates one <image> or <command>; how many there are is
// checked by the caller.
func (p *parser) requiredText(s scope, tag string, el *etree.Element) string {
	v := p.text(s, tag, el)
	if v == "" {
		p.add(s, tag, "<%s> must not be empty", tag)
	}
	return v
}

// setting validates one <setting> element and applies its attributes to r.
func (p *parser) setting(s scope, r *Runtime, el *etree.Element) {
	p.noContent(s, "setting", el)
	if len(el.Attr) == 0 {
		p.add(s, "setting", "<setting> has no attribute, expected one of %s", strings.Join(settingAttrs, ", "))
		return
	}
	for _, a := range p.attrs(s, "setting", el, settingAttrs...) {
		elem := "setting@" + a.key
		var msg string
		switch a.key {
		case "memory_mb":
			r.MemoryMB, msg = parseInt("container memory size", a.value, 1, 1<<31-1)
		case "cpu_share":
			r.CPUShare, msg = parseInt("container cpu share", a.value, 1, 1<<31-1)
		case "use_container_logging":
			r.UseContainerLogging, msg = parseYesNo(a.key, a.value)
		case "enable_network":
			r.EnableNetwork, msg = parseYesNo(a.key, a.value)
		case "resource_group_id":
			r.ResourceGroupID, msg = parseResourceGroupID(a.value)
		case "roles":
			r.Roles, msg = parseRoles(a.value)
		}
		if msg != "" {
			p.add(s, elem, "%s", msg)
		}
	}
}

// sharedDirectory validates one <shared_directory> element and appends it
// to r. mounts holds the container paths (mountKey) seen so far.
func (p *parser) sharedDirectory(s scope, r *Runtime, el *etree.Element, mounts map[string]bool) {
	p.noContent(s, "shared_directory", el)
	attrs := p.attrs(s, "shared_directory", el, sharedDirAttrs...)
	var d SharedDir
	for _, name := range sharedDirAttrs {
		elem := "shared_directory@" + name
		v, ok := attrs.get(name)
		if !ok {
			p.add(s, elem, "missing mandatory attribute %s", name)
			continue
		}
		switch name {
		case "host":
			d.Host = v
			if msg := checkMountPath("host", v); msg != "" {
				p.add(s, elem, "%s", msg)
			}
		case "container":
			d.Container = v
			if msg := checkMountPath("container", v); msg != "" {
				p.add(s, elem, "%s", msg)
			} else if path.Clean(v) == ReservedContainerPath {
				p.add(s, elem, "container path %s is reserved for the client's socket directory", quote(v))
			} else if mounts[mountKey(v)] {
				p.add(s, elem, "container path %s is already used by another <shared_directory> (paths compare case-insensitively)", quote(v))
			} else {
				mounts[mountKey(v)] = true
			}
		case "access":
			switch v {
			case "ro":
				d.ReadOnly = true
			case "rw":
			default:
				p.add(s, elem, `access must be "ro" or "rw", got %s`, quote(v))
			}
		}
	}
	r.SharedDirs = append(r.SharedDirs, d)
}

// deviceRequest validates one <device_request> element and appends it to r.
func (p *parser) deviceRequest(s scope, r *Runtime, el *etree.Element) {
	attrs := p.attrs(s, "device_request", el, deviceAttrs...)
	var d DeviceRequest
	typ, ok := attrs.get("type")
	switch {
	case !ok:
		p.add(s, "device_request@type", "missing mandatory attribute type")
	case typ == "":
		p.add(s, "device_request@type", "type must not be empty")
	}
	d.Type = typ
	_, all := attrs.get("all")

	var caps []string
	nDriver := 0
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			p.unexpectedText(s, "device_request", t)
		case *etree.Element:
			tag := t.FullTag()
			elem := "device_request/" + tagOf(t)
			switch tag {
			case "deviceid", "capacity", "driver":
			default:
				p.add(s, elem, "unrecognized element <%s> inside <device_request>", tagOf(t))
				continue
			}
			v := p.text(s, elem, t)
			if v == "" {
				p.add(s, elem, "<%s> must not be empty", tag)
			}
			switch tag {
			case "deviceid":
				d.DeviceIDs = append(d.DeviceIDs, v)
			case "capacity":
				caps = append(caps, v)
			case "driver":
				nDriver++
				if nDriver == 2 {
					p.add(s, elem, "more than one <driver> element, at most one is allowed")
				}
				if nDriver == 1 {
					d.Driver = v
				}
			}
		}
	}
	if all && len(d.DeviceIDs) > 0 {
		p.add(s, "device_request@all", "attribute all must not be combined with <deviceid> elements")
	}
	d.All = all || len(d.DeviceIDs) == 0
	if d.All {
		d.DeviceIDs = nil
	}
	d.Capabilities = append(caps, typ)
	r.Devices = append(r.Devices, d)
}

// runtimeBackend validates a <backend name=.../> element inside a runtime
// and returns the backend name, or "" when it is unusable.
func (p *parser) runtimeBackend(s scope, cfg *Config, el *etree.Element) string {
	p.noContent(s, "backend", el)
	attrs := p.attrs(s, "backend", el, "name")
	name, ok := attrs.get("name")
	switch {
	case !ok:
		p.add(s, "backend@name", "missing mandatory attribute name")
		return ""
	case name == "":
		p.add(s, "backend@name", "backend name must not be empty")
		return ""
	case cfg.Backends[name] == nil:
		p.add(s, "backend@name", "unknown backend %s, no top-level <backend> has this name", quote(name))
		return ""
	}
	return name
}

// coordinator validates a <coordinator .../> element and applies its
// attributes to r.
func (p *parser) coordinator(s scope, r *Runtime, el *etree.Element) {
	p.noContent(s, "coordinator", el)
	for _, a := range p.attrs(s, "coordinator", el, coordinatorAttrs...) {
		var msg string
		var n int64
		switch a.key {
		case "prewarm":
			n, msg = parseInt("prewarm", a.value, 0, 100)
			r.Prewarm = int(n)
		case "idle_timeout":
			n, msg = parseInt("idle_timeout (seconds)", a.value, 0, 86400)
			r.IdleTimeout = time.Duration(n) * time.Second
		case "max_containers":
			n, msg = parseInt("max_containers", a.value, 0, 100000)
			r.MaxContainers = int(n)
		case "reuse_across_sessions":
			r.ReuseAcrossSessions, msg = parseYesNo(a.key, a.value)
		case "start_timeout":
			n, msg = parseInt("start_timeout (seconds)", a.value, 1, 600)
			r.StartTimeout = time.Duration(n) * time.Second
		}
		if msg != "" {
			p.add(s, "coordinator@"+a.key, "%s", msg)
		}
	}
}

// backend validates the n-th top-level <backend> element (1-based) and
// registers it in cfg under its name. declared holds the names the file has
// declared so far.
func (p *parser) backend(cfg *Config, el *etree.Element, n int, declared map[string]bool) {
	// Name the backend in messages before its attributes are checked.
	s := scope{prefix: fmt.Sprintf("backend %s: ", positionLabel(n))}
	for _, a := range el.Attr {
		if a.FullKey() == "name" && trim(a.Value) != "" {
			s.prefix = fmt.Sprintf("backend %s: ", quote(trim(a.Value)))
			break
		}
	}
	attrs := p.attrs(s, "backend", el, "name", "type")
	name, hasName := attrs.get("name")
	switch {
	case !hasName:
		p.add(s, "backend@name", "missing mandatory attribute name")
	case name == "":
		p.add(s, "backend@name", "backend name must not be empty")
	case declared[name]:
		p.add(s, "backend@name", "duplicate backend name, another <backend> already has it")
	}

	b := &Backend{Name: name}
	typ, hasType := attrs.get("type")
	switch {
	case !hasType:
		p.add(s, "backend@type", "missing mandatory attribute type")
	case typ == "docker" || typ == "local_docker":
		b.Type = BackendDocker
	case typ == "remote_docker":
		b.Type = BackendRemoteDocker
	default:
		p.add(s, "backend@type", `type must be one of "docker", "local_docker", "remote_docker", got %s`, quote(typ))
	}

	seen := map[string]bool{}
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			p.unexpectedText(s, "backend", t)
		case *etree.Element:
			tag := t.FullTag()
			elem := "backend/" + tagOf(t)
			i := slices.IndexFunc(backendChildren, func(c backendChild) bool { return c.tag == tag })
			if i < 0 {
				p.add(s, elem, "unrecognized element <%s> inside <backend>", tagOf(t))
				continue
			}
			if seen[tag] {
				p.add(s, elem, "duplicate <%s> element", tag)
				continue
			}
			seen[tag] = true
			if backendChildren[i].remoteOnly && b.Type == BackendDocker {
				p.add(s, elem, "<%s> is only valid for a remote_docker backend", tag)
			}
			p.backendChild(s, b, elem, tag, p.text(s, elem, t))
		}
	}

	switch b.Type {
	case BackendDocker:
		if !seen["address"] {
			p.add(s, "backend/address", "missing <address> element, required for a docker backend")
		}
	case BackendRemoteDocker:
		if !seen["address"] {
			p.add(s, "backend/address", "missing <address> element, required for a remote_docker backend")
		}
		if !seen["port"] {
			p.add(s, "backend/port", "missing <port> element, required for a remote_docker backend")
		}
	}
	p.pair(s, seen, "username", "password")
	p.pair(s, seen, "tls_cert", "tls_key")

	if hasName && name != "" && !declared[name] {
		declared[name] = true
		cfg.Backends[name] = b // a backend named "default" replaces the built-in one
	}
}

// backendChild validates the value v of child element tag of a top-level
// backend and stores it in b.
func (p *parser) backendChild(s scope, b *Backend, elem, tag, v string) {
	var msg string
	switch tag {
	case "address":
		b.Address = v
	case "port":
		var n int64
		n, msg = parseInt("port", v, 1, 65535)
		b.Port = int(n)
	case "username":
		b.Username = v
	case "password":
		b.Password = v
	case "add_segment_index":
		b.AddSegmentIndex, msg = parseBool(tag, v)
	case "tls_ca":
		b.TLSCA = v
	case "tls_cert":
		b.TLSCert = v
	case "tls_key":
		b.TLSKey = v
	case "tls_verify":
		b.TLSVerify, msg = parseYesNo(tag, v)
	}
	switch {
	case msg != "":
		p.add(s, elem, "%s", msg)
	case v == "" && tag != "add_segment_index" && tag != "port" && tag != "tls_verify":
		p.add(s, elem, "<%s> must not be empty", tag)
	}
}

// pair reports a backend that has only one of two child elements that go
// together.
func (p *parser) pair(s scope, seen map[string]bool, a, b string) {
	switch {
	case seen[a] && !seen[b]:
		p.add(s, "backend/"+b, "<%s> requires <%s>, give both or neither", a, b)
	case seen[b] && !seen[a]:
		p.add(s, "backend/"+a, "<%s> requires <%s>, give both or neither", b, a)
	}
}

// attr is one recognised attribute, its value trimmed.
type attr struct {
	key, value string
}

// attrList holds the recognised attributes of an element in document
// order, each at most once.
type attrList []attr

// get returns the value of attribute key and whether it is present.
func (l attrList) get(key string) (string, bool) {
	for _, a := range l {
		if a.key == key {
			return a.value, true
		}
	}
	return "", false
}

// attrs returns the attributes of el that are among known and reports every
// other attribute and every repeated one. elem is the element's name in
// problems.
func (p *parser) attrs(s scope, elem string, el *etree.Element, known ...string) attrList {
	var l attrList
	for _, a := range el.Attr {
		key := a.FullKey()
		if !slices.Contains(known, key) {
			k := shorten(key)
			p.add(s, elem+"@"+k, "unrecognized attribute %s%s", k, attrHints[elem+"@"+key])
			continue
		}
		if _, dup := l.get(key); dup {
			p.add(s, elem+"@"+key, "attribute %s is given more than once", key)
			continue
		}
		l = append(l, attr{key: key, value: trim(a.Value)})
	}
	return l
}

// text returns the trimmed character data of an element that holds text
// only, reporting its attributes and child elements. elem is the element's
// name in problems.
func (p *parser) text(s scope, elem string, el *etree.Element) string {
	p.attrs(s, elem, el)
	var b strings.Builder
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		case *etree.Element:
			p.add(s, elem, "unexpected element <%s> inside <%s>", tagOf(t), tagOf(el))
		}
	}
	return trim(b.String())
}

// noContent reports child elements and text inside an element that carries
// attributes only.
func (p *parser) noContent(s scope, elem string, el *etree.Element) {
	for _, tok := range el.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			p.unexpectedText(s, elem, t)
		case *etree.Element:
			p.add(s, elem, "unexpected element <%s> inside <%s>", tagOf(t), tagOf(el))
		}
	}
}

// unexpectedText reports non-blank text where only elements belong.
func (p *parser) unexpectedText(s scope, elem string, t *etree.CharData) {
	if !isBlank(t.Data) {
		p.add(s, elem, "unexpected text %s inside <%s>", quote(trim(t.Data)), elem)
	}
}

// rawText returns the trimmed character data of el without checking
// anything; it names a runtime before its <id> is validated.
func rawText(el *etree.Element) string {
	var b strings.Builder
	for _, tok := range el.Child {
		if t, ok := tok.(*etree.CharData); ok {
			b.WriteString(t.Data)
		}
	}
	return trim(b.String())
}

// tagOf returns the element's name with its namespace prefix, shortened for
// messages.
func tagOf(el *etree.Element) string {
	return shorten(el.FullTag())
}

// shorten cuts an XML name to maxQuoted bytes. Names never contain quotes or
// control characters, so they need no escaping.
func shorten(name string) string {
	if len(name) <= maxQuoted {
		return name
	}
	cut := maxQuoted
	for cut > 0 && name[cut]&0xC0 == 0x80 {
		cut--
	}
	return name[:cut] + "..."
}
