package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 100

// ProcSample is one reading of a process's CPU time and resident memory.
type ProcSample struct {
	At    time.Time
	CPU   time.Duration // utime + stime
	RSSKB int64         // VmRSS
	// SyscR and SyscW count read and write system calls (read, readv,
	// write, writev, sendmsg...) from /proc/PID/io; -1 if unreadable.
	SyscR, SyscW int64
}

// SampleProc reads /proc/PID/stat and /proc/PID/status.
func SampleProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.RSSKB = parseStatusKB(status, "VmRSS:")
	s.SyscR, s.SyscW = -1, -1
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		s.SyscR = parseStatusKB(io, "syscr:")
		s.SyscW = parseStatusKB(io, "syscw:")
	}
	return s, nil
}

// parseStatCPU returns utime+stime. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("only %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// parseStatusKB returns the number after key in a "key: value [kB]" file
// such as /proc/PID/status or /proc/PID/io, or -1.
func parseStatusKB(status []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// Cores is the CPU used between two samples, in cores (1.0 = one core busy).
func Cores(a, b ProcSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return float64(b.CPU-a.CPU) / float64(wall)
}

// MachineSample is one reading of the first line of /proc/stat.
type MachineSample struct {
	At         time.Time
	Busy, Idle time.Duration // summed over every CPU; Idle includes iowait
}

// SampleMachine reads the machine-wide CPU counters.
func SampleMachine() (MachineSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineSample{}, err
	}
	return parseProcStat(b, time.Now())
}

func parseProcStat(b []byte, at time.Time) (MachineSample, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return MachineSample{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	s := MachineSample{At: at}
	// user nice system idle iowait irq softirq steal (guest is inside user).
	for i := 1; i < len(f) && i <= 8; i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return MachineSample{}, fmt.Errorf("/proc/stat: field %d: %w", i, err)
		}
		d := time.Duration(v) * time.Second / clockTick
		if i == 4 || i == 5 {
			s.Idle += d
		} else {
			s.Busy += d
		}
	}
	return s, nil
}

// MachineCores is how many cores the whole machine kept busy between two
// samples.
func MachineCores(a, b MachineSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(wall)
}
