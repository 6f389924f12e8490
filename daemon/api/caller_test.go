package api

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCallerGroupsFromProc: a caller whose /proc entry the daemon can read
// is judged on the groups its process really has (the real kernel path:
// a Unix connection from this process).
func TestCallerGroupsFromProc(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("unix", sock); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caller, err := peerCaller(c)
	if err != nil {
		t.Fatal(err)
	}
	want, err := unix.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	got := slices.Clone(caller.Groups)
	slices.Sort(got)
	if caller.PID != os.Getpid() || caller.GroupsFrom != GroupsFromProc || !slices.Equal(got, want) {
		t.Errorf("caller %+v, want this process's groups %v from /proc", caller, want)
	}
}

// TestCallerGroupsFallBackToUserDB: when /proc cannot be read the groups
// are the user database's for the uid — which may hold a group the process
// itself does not have (wider), as the comment says. Both paths decide
// admission through allowed.
func TestCallerGroupsFallBackToUserDB(t *testing.T) {
	const adminGID, uid = 4711, 1234
	procHasNoAdmin := []byte("Name:\tcamwarden\nGroups:\t100 200 \n")
	userDBHasAdmin := func(u int) []int {
		if u == uid {
			return []int{100, adminGID}
		}
		return nil
	}
	readable := groupSources{procStatus: func(int) ([]byte, error) { return procHasNoAdmin, nil }, userDB: userDBHasAdmin}
	hidden := groupSources{procStatus: func(int) ([]byte, error) { return nil, errors.New("no such file") }, userDB: userDBHasAdmin}

	groups, from := callerGroups(99, uid, readable)
	if from != GroupsFromProc || !slices.Equal(groups, []int{100, 200}) {
		t.Fatalf("readable /proc: %v from %s", groups, from)
	}
	if ok, _ := allowed(Caller{UID: uid, GID: 100, Groups: groups}, 0, adminGID); ok {
		t.Error("a process without the admin group was admitted while its /proc was readable")
	}

	groups, from = callerGroups(99, uid, hidden)
	if from != GroupsFromUserDB || !slices.Equal(groups, []int{100, adminGID}) {
		t.Fatalf("hidden /proc: %v from %s", groups, from)
	}
	if ok, _ := allowed(Caller{UID: uid, GID: 100, Groups: groups}, 0, adminGID); !ok {
		t.Error("the user database's admin group was not honoured when /proc is hidden")
	}

	// The real user database: root's groups, as os/user reports them.
	if groups, from := callerGroups(99, 0, groupSources{procStatus: hidden.procStatus, userDB: userDBGroups}); from != GroupsFromUserDB || !slices.Equal(groups, userDBGroups(0)) {
		t.Errorf("real user database for uid 0: %v from %s", groups, from)
	}
	// A status that reads but does not parse gives no groups at all.
	garbled := groupSources{procStatus: func(int) ([]byte, error) { return []byte("Groups:\tx\n"), nil }, userDB: userDBHasAdmin}
	if groups, from := callerGroups(99, uid, garbled); groups != nil || from != GroupsFromProc {
		t.Errorf("garbled status: %v from %s", groups, from)
	}
}
