package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Caller is the process at the other end of an admin connection, as the
// kernel reports it (SO_PEERCRED) plus what /proc says about it.
type Caller struct {
	UID    int
	GID    int
	PID    int
	Groups []int // supplementary groups (see callerGroups for where from)
	// GroupsFrom says where Groups came from: GroupsFromProc (the
	// process's own) or GroupsFromUserDB (the user database's, when /proc
	// could not be read).
	GroupsFrom string
	Exe        string // /proc/PID/comm; informational only, never used to decide
}

// String names the caller for logs and the audit log.
func (c Caller) String() string {
	exe := c.Exe
	if exe == "" {
		exe = "?"
	}
	return fmt.Sprintf("uid=%d gid=%d pid=%d exe=%s", c.UID, c.GID, c.PID, exe)
}

type callerKey struct{}

// callerResult is what ConnContext found out about a connection.
type callerResult struct {
	caller Caller
	err    error
}

// CallerFromContext returns the peer of the request's connection when it was
// identified.
func CallerFromContext(ctx context.Context) (Caller, bool) {
	r, ok := ctx.Value(callerKey{}).(*callerResult)
	if !ok || r.err != nil {
		return Caller{}, false
	}
	return r.caller, true
}

// connContext attaches the peer's credentials to every request of c.
func connContext(ctx context.Context, c net.Conn) context.Context {
	caller, err := peerCaller(c)
	return context.WithValue(ctx, callerKey{}, &callerResult{caller: caller, err: err})
}

// peerCaller reads SO_PEERCRED from a Unix connection.
func peerCaller(c net.Conn) (Caller, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Caller{}, fmt.Errorf("not a unix socket connection (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, err
	}
	if credErr != nil {
		return Caller{}, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	caller := Caller{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
	if caller.PID > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", caller.PID)); err == nil {
			caller.Exe = strings.TrimSpace(string(b))
		}
		caller.Groups, caller.GroupsFrom = callerGroups(caller.PID, caller.UID, systemGroupSources)
	}
	return caller, nil
}

// Where a caller's supplementary groups came from (Caller.GroupsFrom).
const (
	GroupsFromProc   = "proc"   // the process's own groups, /proc/PID/status
	GroupsFromUserDB = "userdb" // the user database's groups for the caller's uid
)

// groupSources are where callerGroups looks; tests replace them.
type groupSources struct {
	procStatus func(pid int) ([]byte, error)
	userDB     func(uid int) []int
}

var systemGroupSources = groupSources{
	procStatus: func(pid int) ([]byte, error) { return os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)) },
	userDB:     userDBGroups,
}

// callerGroups returns the caller's supplementary groups: the process's
// own, from /proc/PID/status, when that can be read. When it cannot — the
// unit's ProtectProc=invisible hides other users' processes from the
// daemon, which is the usual case for a non-root admin, or the caller has
// already exited — it returns the groups the user database gives the
// caller's uid instead. That is where an installer adds admins (adduser
// alice camwarden-admin), and it can be WIDER than the process's own
// groups: a login from before the adduser, or a process that dropped its
// groups, is judged a member. The uid is the kernel's (SO_PEERCRED), so
// this never admits a uid the admin did not put in the group. A status
// that can be read but not parsed gives no groups (uid and gid alone),
// which can only refuse more.
func callerGroups(pid, uid int, src groupSources) ([]int, string) {
	if b, err := src.procStatus(pid); err == nil {
		groups, _ := parseProcGroups(b)
		return groups, GroupsFromProc
	}
	return src.userDB(uid), GroupsFromUserDB
}

// userDBGroups lists the groups the user database gives uid (nil if unknown).
func userDBGroups(uid int) []int {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []int
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// parseProcGroups extracts the "Groups:" line of /proc/PID/status.
func parseProcGroups(status []byte) ([]int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var groups []int
		for _, f := range strings.Fields(rest) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad group %q in /proc status", f)
			}
			groups = append(groups, int(g))
		}
		return groups, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no Groups: line in /proc status")
}

// lookupGroupID resolves the admin group name; -1 when it does not exist.
func lookupGroupID(name string) int {
	if name == "" {
		return -1
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return id
}

// allowed decides whether c may use the admin API: root, the daemon's own
// uid, or a member (primary or supplementary) of the admin group.
func allowed(c Caller, allowUID, adminGID int) (bool, string) {
	if c.UID == 0 {
		return true, ""
	}
	if c.UID == allowUID {
		return true, ""
	}
	if adminGID >= 0 && (c.GID == adminGID || slices.Contains(c.Groups, adminGID)) {
		return true, ""
	}
	return false, fmt.Sprintf("uid %d is neither root, the daemon's uid, nor in the admin group", c.UID)
}
