// Package config loads and validates the runtime configuration of the
// coordinator: PL/Container's plcontainer_configuration.xml, extended with a
// few coordinator settings.
//
// # What it reads
//
// The file has a <configuration> root with one or more <runtime> elements
// and any number of top-level <backend> elements:
//
//	<configuration>
//	  <backend name="gpuhost" type="remote_docker">
//	    <address>gpu1.example.com</address>
//	    <port>2376</port>
//	    <tls_ca>/etc/plcoordinator/ca.pem</tls_ca>
//	    <tls_verify>yes</tls_verify>
//	  </backend>
//	  <runtime>
//	    <id>plc_python3_shared</id>
//	    <image>pivotaldata/plcontainer_python3_shared:devel</image>
//	    <command>/clientdir/py3client.sh</command>
//	    <shared_directory host="/usr/local/plcontainer_clients" container="/clientdir" access="ro"/>
//	    <setting memory_mb="512" cpu_share="1024" roles="analysts"/>
//	    <setting enable_network="yes"/>
//	    <device_request type="gpu"><deviceid>0</deviceid></device_request>
//	    <backend name="gpuhost"/>
//	    <coordinator prewarm="2" idle_timeout="300" max_containers="20" reuse_across_sessions="no" start_timeout="30"/>
//	  </runtime>
//	</configuration>
//
// Load reads a file, Parse validates bytes. A file that does not exist is
// not an error: it yields a Config with Missing set and no runtimes. Any
// other failure of validation yields an *Error that lists every problem of
// the file, each naming the runtime and the element or attribute at fault,
// so an administrator can fix the whole file in one pass. A configuration is
// either valid as a whole or rejected; there is no partial result.
//
// The defaults are PL/Container's: memory_mb 1024, cpu_share 1024, logging
// and network off, backend "default". The built-in "default" backend is the
// local Docker engine; its empty Address means "use the plcoordinator.docker_host
// setting".
//
// The optional <coordinator .../> element inside a runtime carries settings
// PL/Container does not have: prewarm (fresh containers kept ready, 0..100,
// default 0), idle_timeout (seconds an idle session container is kept,
// 0..86400, default 0 = until the session ends), max_containers (per-runtime
// cap, 0..100000, default 0 = only the global limit), reuse_across_sessions
// (yes/no, default no) and start_timeout (seconds from create to ready,
// 1..600, default 30). prewarm must not exceed a non-zero max_containers.
// Top-level remote_docker backends may also carry <tls_ca>, <tls_cert>,
// <tls_key> (file paths; cert and key go together) and <tls_verify> (yes/no,
// default no).
//
// # Differences from PL/Container
//
// A file PL/Container accepts is accepted here too unless it relies on one
// of the following. PL/Container stops at the first error; this package
// collects all of them. Where PL/Container silently ignores something, this
// package rejects it, because a misspelt setting that is ignored is a
// runtime that quietly runs with the wrong limits.
//
//   - Text content and attribute values are trimmed of surrounding XML white
//     space (space, tab, CR, LF). PL/Container keeps it, so that
//     "<image> x </image>" names the image " x ".
//   - Unknown child elements of <configuration> are rejected; PL/Container
//     ignores them. Attributes of <configuration> itself are ignored, as in
//     PL/Container (so namespace declarations do no harm).
//   - Unknown attributes are rejected on every element below the root,
//     including next to known ones on <setting> (PL/Container ignores them
//     there and everywhere else), and an attribute given twice is rejected.
//     The removed use_container_network setting is one such attribute.
//   - Text inside elements that hold only elements or only attributes, and
//     elements inside text elements such as <image>, are rejected;
//     PL/Container ignores the former and concatenates the text of the
//     latter.
//   - The runtime id is checked against ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ when the
//     file is read. PL/Container only checks the length and leaves the
//     syntax to the function-call parser and the CLI.
//   - Empty <image>, <command>, <deviceid>, <capacity>, <driver> and backend
//     child elements are rejected.
//   - Shared directories: host and container paths must be absolute and must
//     not contain ':' (Docker's bind separator); the container path
//     /tmp/plcontainer (in any spelling that cleans to it) is reserved for
//     the client's socket directory, a rule PL/Container only has in its CLI;
//     duplicate container paths are compared after cleaning ("/data/" and
//     "/data" collide) and, as in PL/Container, case-insensitively.
//   - memory_mb and cpu_share keep PL/Container's 32-bit range.
//     resource_group_id must be digits only and greater than 0; unlike
//     PL/Container it is not looked up in the catalog (the coordinator has
//     no database connection) and is stored in canonical form ("007" is
//     "7").
//   - roles is split on ',' and each name trimmed; empty names are rejected.
//     Names are kept as written: PL/Container parses the list as SQL
//     identifiers (unquoted names folded to lower case), so a consumer that
//     checks membership must apply identifier rules itself.
//   - <device_request all> together with <deviceid> children is rejected:
//     PL/Container silently drops the ids, and Docker forbids asking for all
//     devices and for specific ones at once. As in PL/Container, the value
//     of all is not read, only its presence.
//   - A runtime with more than one <backend> or <coordinator> is rejected;
//     PL/Container lets the last <backend> win.
//   - "remote_docker needs enable_network" is checked after the whole runtime
//     has been read. PL/Container checks it when it meets <backend>, so a
//     <setting enable_network="yes"/> placed after <backend> fails there; that
//     is a bug, not a rule.
//   - Top-level backends: unknown child elements are rejected (PL/Container
//     ignores them), children that only make sense for remote_docker (port,
//     credentials, add_segment_index, tls_*) are rejected on a docker
//     backend, username and password must come together, and duplicate
//     backend names are rejected (PL/Container takes the first). A backend
//     named "default" replaces the built-in one instead of being shadowed by
//     it. add_segment_index accepts yes/no/true/false/1/0; PL/Container reads
//     it with atoi, so "true" means false there. The <address> of a docker
//     backend is used; PL/Container ignores it and always talks to
//     /var/run/docker.sock.
//   - A missing file yields zero runtimes instead of an error, and files
//     larger than 4 MiB (MaxFileSize) are rejected.
//
// The XML decoder never reads external resources: a DOCTYPE is kept as an
// inert directive and any entity other than the predefined ones is a syntax
// error. Element nesting is limited as well.
package config
