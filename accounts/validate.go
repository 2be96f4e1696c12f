package accounts

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of what the API accepts.
const (
	maxNameLen      = 128
	maxLabelLen     = 256
	maxProviderKey  = 4096
	maxModels       = 1000
	maxProviderKeys = 100
	// maxSeconds keeps durations far from overflowing time.Duration.
	maxSeconds = 100 * 365 * 24 * 3600
)

var providerHeaders = []string{"authorization", "x-api-key", "api-key", "x-goog-api-key"}

// reservedProviderNames would be shadowed by fixed API paths.
var reservedProviderNames = map[string]bool{"health": true}

// validName applies the consumer package's naming rules: names become
// parts of Redis keys (hence no braces) and of API paths (hence no
// slashes).
func validName(s string) error {
	switch {
	case s == "":
		return errors.New("must be set")
	case len(s) > maxNameLen:
		return fmt.Errorf("must be at most %d characters", maxNameLen)
	case !utf8.ValidString(s):
		return errors.New("must be UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r == '{' || r == '}' || r == '/' || unicode.IsControl(r) }):
		return fmt.Errorf("%q must not contain braces, slashes or control characters", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q must not start or end with spaces", s)
	}
	return nil
}

func validateModels(models []string) []error {
	var errs []error
	if len(models) > maxModels {
		errs = append(errs, fmt.Errorf("models: at most %d globs", maxModels))
	}
	for i, pattern := range models {
		if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
			errs = append(errs, fmt.Errorf("models[%d]: bad glob %q", i, pattern))
		}
	}
	return errs
}

func validateQuota(q *Quota) []error {
	if q == nil {
		return nil
	}
	if err := q.allotment().Validate("quota"); err != nil {
		return []error{err}
	}
	return nil
}

func validateLabel(label string) error {
	switch {
	case len(label) > maxLabelLen:
		return fmt.Errorf("label: must be at most %d characters", maxLabelLen)
	case !utf8.ValidString(label) || strings.ContainsFunc(label, unicode.IsControl):
		return errors.New("label: must be UTF-8 text without control characters")
	}
	return nil
}

func headerOrDefault(h string) string {
	if h == "" {
		return "authorization"
	}
	return strings.ToLower(h)
}

func validateProviderFields(name, pathPrefix, host, header string, restSeconds int64) error {
	var errs []error
	if err := validName(name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	} else if reservedProviderNames[name] {
		errs = append(errs, fmt.Errorf("name: %q is reserved", name))
	}
	if !strings.HasPrefix(pathPrefix, "/") {
		errs = append(errs, errors.New("path_prefix: must start with /"))
	} else if strings.ContainsFunc(pathPrefix, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '?' || r == '#' }) {
		errs = append(errs, errors.New("path_prefix: must be a path without spaces, control characters, ? or #"))
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
		errs = append(errs, errors.New("host: must be a host[:port] without spaces, slashes or control characters"))
	}
	h := headerOrDefault(header)
	found := false
	for _, ok := range providerHeaders {
		found = found || h == ok
	}
	if !found {
		errs = append(errs, fmt.Errorf("header: %q is not one of %s", header, strings.Join(providerHeaders, ", ")))
	}
	if restSeconds < 0 || restSeconds > maxSeconds {
		errs = append(errs, fmt.Errorf("rest_seconds: must be between 0 and %d", maxSeconds))
	}
	return errors.Join(errs...)
}

// validateProviderKey keeps what would break or smuggle headers out: the
// key goes into a request header as is.
func validateProviderKey(key string) error {
	switch {
	case key == "":
		return errors.New("must not be empty")
	case len(key) > maxProviderKey:
		return fmt.Errorf("must be at most %d characters", maxProviderKey)
	case strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return errors.New("must be printable ASCII without spaces")
	}
	return nil
}
