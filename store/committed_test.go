package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestCommittedHook: every write transaction that tries to commit is
// reported with its duration and audit entries; one that fn rolls back is not.
func TestCommittedHook(t *testing.T) {
	type call struct {
		took  time.Duration
		audit int
		err   error
	}
	var mu sync.Mutex
	var calls []call
	s := openStore(t, dbPath(t), mustKey(t), Options{Committed: func(took time.Duration, n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{took, n, err})
	}})
	ctx := context.Background()
	base := len(calls) // opening may commit (creation, migrations go through bbolt directly)
	if err := s.Update(ctx, &AuditEntry{Action: "group.add", Target: "g", Outcome: "ok"}, func(tx *Tx) error { return tx.CreateGroup("g") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, nil, func(tx *Tx) error { return errors.New("validation failed") }); err == nil {
		t.Fatal("rolled-back update returned nil")
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{Action: "api.refused", Outcome: "refused: test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, nil, func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	got := calls[base:]
	if len(got) != 3 {
		t.Fatalf("calls = %+v, want 3 (the rolled-back one not reported)", got)
	}
	for i, want := range []int{1, 1, 0} {
		if got[i].audit != want || got[i].err != nil || got[i].took <= 0 {
			t.Errorf("call %d = %+v, want %d audit entries, no error, a duration", i, got[i], want)
		}
	}
}
