package store

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestForeignFilesRefusedUntouched(t *testing.T) {
	random := make([]byte, 64<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(path string){
		"text":   func(p string) { os.WriteFile(p, []byte("hello, world\n"), 0o600) },
		"empty":  func(p string) { os.WriteFile(p, nil, 0o600) },
		"random": func(p string) { os.WriteFile(p, random, 0o600) },
		"sqlite": func(p string) {
			os.WriteFile(p, append([]byte("SQLite format 3\x00"), make([]byte, 8192)...), 0o600)
		},
		"other bbolt": func(p string) {
			rawUpdate(t, p, func(btx *bolt.Tx) error {
				b, err := btx.CreateBucket([]byte("foo"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		},
		"empty bbolt": func(p string) { rawUpdate(t, p, func(*bolt.Tx) error { return nil }) },
		"bbolt with a meta bucket of another program": func(p string) {
			rawUpdate(t, p, func(btx *bolt.Tx) error {
				b, err := btx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(metaFormat, []byte("something-else"))
			})
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			path := dbPath(t)
			mk(path)
			before := snapshot(t, path)
			_, err := Open(path, mustKey(t), Options{Timeout: 200 * time.Millisecond})
			if !errors.Is(err, ErrNotCamwarden) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v", err)
			}
			if _, _, err := ProbeSealed(path); !errors.Is(err, ErrNotCamwarden) {
				t.Errorf("ProbeSealed: %v", err)
			}
			assertUnchanged(t, path, before)
		})
	}
}

func TestDamagedFilesRefusedUntouched(t *testing.T) {
	k := mustKey(t)
	template := dbPath(t)
	s := openStore(t, template, k, Options{})
	populate(t, s)
	for i := range 200 { // enough data for several pages
		update(t, s, func(tx *Tx) error {
			return tx.CreateCamera(Camera{Name: fmt.Sprintf("bulk%03d", i), Streams: []Stream{{Name: "main", URL: strings.Repeat("u", 100)}}}, "pw")
		})
	}
	s.Close()
	tmpl, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	if len(tmpl) < 16*4096 {
		t.Fatalf("template database too small: %d", len(tmpl))
	}
	withBytes := func(f func(b []byte) []byte) func(p string) {
		return func(p string) {
			if err := os.WriteFile(p, f(append([]byte{}, tmpl...)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := map[string]func(p string){
		"truncated to half":   withBytes(func(b []byte) []byte { return b[:len(b)/2] }),
		"truncated to 100 B":  withBytes(func(b []byte) []byte { return b[:100] }),
		"truncated to 5000 B": withBytes(func(b []byte) []byte { return b[:5000] }),
		"one byte short of the high water mark": withBytes(func(b []byte) []byte {
			m := bestMeta(t, b)
			return b[:int(m.pgid)*int(m.pageSize)-1]
		}),
		"both meta pages damaged": withBytes(func(b []byte) []byte {
			b[16+20] ^= 0xff      // root pgid in meta 0, checksum now wrong
			b[4096+16+20] ^= 0xff // and in meta 1
			return b
		}),
		"freelist count inflated": withBytes(func(b []byte) []byte {
			m := bestMeta(t, b)
			off := int(m.freelist) * int(m.pageSize)
			binary.NativeEndian.PutUint16(b[off+10:], 0xFFFF)
			binary.NativeEndian.PutUint64(b[off+16:], 1<<40)
			return b
		}),
		"data pages overwritten": withBytes(func(b []byte) []byte {
			rand.Read(b[2*4096:])
			return b
		}),
		"record garbled": func(p string) {
			withBytes(func(b []byte) []byte { return b })(p)
			rawUpdate(t, p, func(btx *bolt.Tx) error {
				return btx.Bucket(bucketUsers).Put([]byte("alice"), []byte(`{"name":"alice","created":12`))
			})
		},
		"wrapped data key altered": func(p string) {
			withBytes(func(b []byte) []byte { return b })(p)
			rawUpdate(t, p, func(btx *bolt.Tx) error {
				m := btx.Bucket(bucketMeta)
				v := append([]byte{}, m.Get(metaDataKey)...)
				v[len(v)-1] ^= 1
				return m.Put(metaDataKey, v)
			})
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			path := dbPath(t)
			mk(path)
			before := snapshot(t, path)
			s, err := Open(path, k, Options{Timeout: 200 * time.Millisecond})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v", err)
			}
			if err == nil {
				s.Close()
			}
			assertUnchanged(t, path, before)
		})
	}
}

func TestNewerSchemaRefusedUntouched(t *testing.T) {
	path := dbPath(t)
	k := mustKey(t)
	s := openStore(t, path, k, Options{})
	populate(t, s)
	s.Close()
	rawUpdate(t, path, func(btx *bolt.Tx) error {
		return btx.Bucket(bucketMeta).Put(metaSchema, binary.BigEndian.AppendUint64(nil, schemaVersion+1))
	})
	before := snapshot(t, path)
	_, err := Open(path, k, Options{})
	want := fmt.Sprintf("schema version %d, this build supports up to %d", schemaVersion+1, schemaVersion)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %v", err)
	}
	if _, _, err := ProbeSealed(path); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("ProbeSealed: %v", err)
	}
	assertUnchanged(t, path, before)
}

// bestMeta parses the current bbolt meta page of a database image.
func bestMeta(t *testing.T, b []byte) bboltMeta {
	f, err := os.CreateTemp(t.TempDir(), "meta")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(b[:8192])
	m0, _ := readMeta(f, 0)
	m1, _ := readMeta(f, 4096)
	if m0 == nil || m1 == nil {
		t.Fatal("template meta pages unreadable")
	}
	if m1.txid > m0.txid {
		m0 = m1
	}
	return *m0
}

// --- child processes ---

const (
	helperEnv     = "CAMWARDEN_STORE_HELPER"
	helperDBEnv   = "CAMWARDEN_STORE_DB"
	helperKeyEnv  = "CAMWARDEN_STORE_KEYFILE"
	helperFromEnv = "CAMWARDEN_STORE_FROM"
)

func helperCmd(t *testing.T, role, test, path, keyFile string, from int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperDBEnv+"="+path, helperKeyEnv+"="+keyFile,
		helperFromEnv+"="+strconv.Itoa(from))
	cmd.Stderr = os.Stderr
	return cmd
}

// TestHelperWriter is not a test: run as a child by TestKilledWriter, it
// writes cameras (each with an audit entry) until killed, printing
// "ack N" after each write is durable.
func TestHelperWriter(t *testing.T) {
	if os.Getenv(helperEnv) != "writer" {
		return // only meaningful as a child process
	}
	k, err := LoadKey(os.Getenv(helperKeyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := Open(os.Getenv(helperDBEnv), k, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	from, _ := strconv.Atoi(os.Getenv(helperFromEnv))
	for i := from; i < from+100000; i++ {
		name := fmt.Sprintf("cam%06d", i)
		err := s.Update(context.Background(), &AuditEntry{Action: "camera.add", Target: name, Outcome: "ok"}, func(tx *Tx) error {
			return tx.CreateCamera(Camera{Name: name, Streams: []Stream{{Name: "main", URL: "rtsp://127.0.0.1/" + name}}}, "pw-"+name)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", i)
	}
	os.Exit(0)
}

// TestHelperHolder is not a test: run as a child by TestLockedDatabase, it
// holds the database open until its stdin closes.
func TestHelperHolder(t *testing.T) {
	if os.Getenv(helperEnv) != "holder" {
		return // only meaningful as a child process
	}
	k, err := LoadKey(os.Getenv(helperKeyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := Open(os.Getenv(helperDBEnv), k, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stdout, "ready")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

func TestKilledWriterLosesNoAckedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "camwarden.db")
	keyFile := filepath.Join(dir, "master.key")
	k, err := WriteNewKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	const acksPerRound = 40
	acked := -1 // highest acknowledged camera index
	for round := range 5 {
		cmd := helperCmd(t, "writer", "TestHelperWriter", path, keyFile, acked+1)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		n := 0
		timeout := time.After(30 * time.Second)
		for n < acksPerRound {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: writer exited after %d acks: %v", round, n, cmd.Wait())
				}
				if v, found := strings.CutPrefix(l, "ack "); found {
					i, err := strconv.Atoi(v)
					if err != nil || i != acked+1 {
						t.Fatalf("round %d: unexpected ack line %q after %d", round, l, acked)
					}
					acked = i
					n++
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("round %d: only %d acks in 30s", round, n)
			}
		}
		// Mid-write: the child is already inside its next transaction.
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		for l := range lines { // drain: acks printed before death count too
			if v, found := strings.CutPrefix(l, "ack "); found {
				if i, err := strconv.Atoi(v); err == nil && i == acked+1 {
					acked = i
				}
			}
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: writer did not die by SIGKILL: %v", round, err)
		}

		s, err := Open(path, k, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		view(t, s, func(tx *Tx) error {
			cams, err := tx.Cameras()
			if err != nil {
				return err
			}
			if len(cams) < acked+1 || len(cams) > acked+2 {
				t.Errorf("round %d: %d cameras, %d acked", round, len(cams), acked+1)
			}
			for i := 0; i <= acked; i++ {
				name := fmt.Sprintf("cam%06d", i)
				if pw, err := tx.CameraPassword(name); err != nil || pw != "pw-"+name {
					t.Errorf("round %d: acked %s: %q %v", round, name, pw, err)
				}
			}
			// An unacknowledged but committed write is fine; continue after it.
			acked = len(cams) - 1
			return nil
		})
		v, err := s.VerifyAudit(context.Background())
		if err != nil || !v.OK || v.Entries != uint64(acked+1) {
			t.Errorf("round %d: audit after SIGKILL: %+v %v", round, v, err)
		}
		s.Close()
	}
}

func TestLockedDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "camwarden.db")
	keyFile := filepath.Join(dir, "master.key")
	k, err := WriteNewKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, k, Options{})
	populate(t, s)
	s.Close()

	cmd := helperCmd(t, "holder", "TestHelperHolder", path, keyFile, 0)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		ready <- l
	}()
	select {
	case l := <-ready:
		if l != "ready\n" {
			t.Fatalf("holder said %q", l)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("holder never got ready")
	}

	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = Open(path, k, Options{Timeout: timeout})
	took := time.Since(start)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a locked database: %v", err)
	}
	// bbolt polls the lock every 50 ms and gives up one poll early.
	if took < timeout/2 || took > timeout+2*time.Second {
		t.Errorf("Open gave up after %s, timeout %s", took, timeout)
	}
	if _, _, err := ProbeSealed(path); !errors.Is(err, ErrLocked) {
		t.Errorf("ProbeSealed of a locked database: %v", err)
	}

	// Once the holder is gone, the database opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	s, err = Open(path, k, Options{Timeout: timeout})
	if err != nil {
		t.Fatalf("Open after holder exited: %v", err)
	}
	s.Close()
}
