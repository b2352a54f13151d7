package config

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// runtimeIDPattern is the syntax of a runtime id, the same one PL/Container
// enforces on the "# container: <id>" line of a function.
var runtimeIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// xmlSpace is the set of characters XML treats as white space.
const xmlSpace = " \t\r\n"

// trim removes surrounding XML white space from a text or attribute value.
func trim(s string) string {
	return strings.Trim(s, xmlSpace)
}

// isBlank reports whether s is empty or XML white space only.
func isBlank(s string) bool {
	return trim(s) == ""
}

// checkRuntimeID returns the problem with id (already trimmed), or "".
func checkRuntimeID(id string) string {
	switch {
	case id == "":
		return "runtime id must not be empty"
	case len(id) > MaxRuntimeIDLength:
		return fmt.Sprintf("runtime id must not be longer than %d bytes, got %d bytes", MaxRuntimeIDLength, len(id))
	case !runtimeIDPattern.MatchString(id):
		return fmt.Sprintf("runtime id %s contains an illegal character: it must start with a letter or digit followed by letters, digits, '_', '.' or '-'", quote(id))
	}
	return ""
}

// parseYesNo parses a PL/Container flag: "yes" or "no", any case.
func parseYesNo(name, v string) (bool, string) {
	switch strings.ToLower(v) {
	case "yes":
		return true, ""
	case "no":
		return false, ""
	}
	return false, fmt.Sprintf(`%s must be "yes" or "no", got %s`, name, quote(v))
}

// parseBool parses a flag that also takes the spellings true/false and 1/0,
// any case.
func parseBool(name, v string) (bool, string) {
	switch strings.ToLower(v) {
	case "yes", "true", "1":
		return true, ""
	case "no", "false", "0":
		return false, ""
	}
	return false, fmt.Sprintf(`%s must be one of "yes", "no", "true", "false", "1", "0", got %s`, name, quote(v))
}

// parseInt parses a decimal integer in [lo, hi]. subject names the value in
// the message ("container memory size", "port").
func parseInt(subject, v string, lo, hi int64) (int64, string) {
	// On overflow ParseInt returns the clamped value with ErrRange, which
	// lies outside [lo, hi] and is reported as out of range below.
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Sprintf("%s must be an integer, got %s", subject, quote(v))
	}
	if err == nil && n >= lo && n <= hi {
		return n, ""
	}
	// Open-ended limits (the 32-bit range PL/Container parses memory_mb and
	// cpu_share with) read better as one-sided bounds.
	if hi >= math.MaxInt32 {
		if n < lo {
			return 0, fmt.Sprintf("%s must be greater than %d, got %s", subject, lo-1, quote(v))
		}
		return 0, fmt.Sprintf("%s must be at most %d, got %s", subject, hi, quote(v))
	}
	return 0, fmt.Sprintf("%s must be between %d and %d, got %s", subject, lo, hi, quote(v))
}

// parseResourceGroupID checks a resource group OID: digits only, greater
// than 0, within the 32-bit OID range. It returns the canonical decimal form
// (no leading zeros).
func parseResourceGroupID(v string) (string, string) {
	if v == "" {
		return "", "resource_group_id must not be empty"
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return "", fmt.Sprintf("resource_group_id must contain digits only, got %s", quote(v))
		}
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return "", fmt.Sprintf("resource_group_id must be at most %d, got %s", uint32(math.MaxUint32), quote(v))
	}
	if n == 0 {
		return "", fmt.Sprintf("resource_group_id must be greater than 0, got %s", quote(v))
	}
	return strconv.FormatUint(n, 10), ""
}

// parseRoles splits a comma-separated role list and trims every name.
func parseRoles(v string) ([]string, string) {
	if v == "" {
		return nil, "roles must not be empty"
	}
	roles := strings.Split(v, ",")
	for i, r := range roles {
		roles[i] = trim(r)
		if roles[i] == "" {
			return nil, fmt.Sprintf("roles must not contain an empty role name, got %s", quote(v))
		}
	}
	return roles, ""
}

// checkMountPath returns the problem with a shared_directory path (already
// trimmed), or "". which is "host" or "container".
func checkMountPath(which, p string) string {
	switch {
	case p == "":
		return which + " path must not be empty"
	case !path.IsAbs(p):
		return fmt.Sprintf("%s path must be absolute, got %s", which, quote(p))
	case strings.ContainsRune(p, ':'):
		// Docker's bind syntax is host:container:mode.
		return fmt.Sprintf("%s path must not contain ':', got %s", which, quote(p))
	}
	return ""
}

// mountKey is the form in which container paths are compared for
// duplicates: cleaned and case-folded, as PL/Container compares them
// case-insensitively.
func mountKey(p string) string {
	return strings.ToLower(path.Clean(p))
}
