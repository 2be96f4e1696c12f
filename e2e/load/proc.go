package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. Linux fixes it at
// 100 for user space whatever the kernel's own tick rate.
const userHZ = 100

// cpuTime returns the user plus system CPU time a process has used, all its
// threads together, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the CPU time of process %d: %w", pid, err)
	}
	d, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return d, nil
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/PID/stat. The
// command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) and stime (15) are f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the command name", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat: CPU time %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// rss returns a process's resident set size in bytes (VmRSS of
// /proc/PID/status).
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the memory of process %d: %w", pid, err)
	}
	defer f.Close()
	v, err := parseStatus(f, "VmRSS:")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return v, nil
}

// parseStatus returns the value of a "Name:   123 kB" line in bytes.
func parseStatus(r io.Reader, field string) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, field)
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed %s line %q: %w", field, line, err)
		}
		switch unit {
		case "kB":
			return v << 10, nil
		case "":
			return v, nil
		default:
			return 0, fmt.Errorf("malformed %s line %q: unit %q", field, line, unit)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cannot read status: %w", err)
	}
	return 0, fmt.Errorf("no %s line in status (a kernel thread or a zombie has none)", field)
}
