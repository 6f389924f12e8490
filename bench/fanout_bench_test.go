package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camwarden/camwarden/bench/load"
	"github.com/camwarden/camwarden/daemon/access"
	"github.com/camwarden/camwarden/daemon/stream"
	"github.com/camwarden/camwarden/internal/camsim/media"
)

// mapAuth is the daemon's Authenticator reduced to one user (Digest only).
type mapAuth struct{ user, password string }

func (a mapAuth) VerifyBasic(user, password string) (uint64, bool) {
	return 1, user == a.user && password == a.password
}

func (a mapAuth) CachedBasic(user, password string) (uint64, bool) {
	return a.VerifyBasic(user, password)
}

func (a mapAuth) DigestSecret(user string) (string, uint64, bool) {
	return a.password, 1, user == a.user
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanout runs the fan-out in one process — camsim's 4 Mbit/s
// 1080p camera, daemon/stream's server, N TCP readers — so that
// `go test -bench Fanout -cpuprofile` shows where the restreamer spends
// its time without perf or a pprof endpoint in the daemon. One iteration
// is one frame period (40 ms). Focus the profile on the server side with
// `go tool pprof -focus 'daemon/stream|gortsplib/v5.\(\*server' ...`.
// Metrics: process-wide cores (camera and readers included) and packets
// lost per reader, and the process RSS. FANOUT_HEAPPROFILE=FILE writes
// FILE.N, the heap in use while the N readers are live;
// FANOUT_NO_GOP_CACHE=1 turns the server's GOP cache off.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 500, 1000, 2000} {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	camPW, userPW := secret(), secret()
	cam, err := media.NewServer(media.Config{Addr: "127.0.0.1:0", Username: "admin", Password: camPW, DisableUDP: true,
		Profiles: []media.Profile{media.DefaultProfiles()[0]}})
	if err != nil {
		b.Fatal(err)
	}
	if err := cam.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer cam.Close()
	pol, err := access.New([]access.User{{Name: "viewer", CredentialVersion: 1}}, nil,
		[]access.Grant{{Subject: "viewer", Action: access.ActionRead, Pattern: "cam1/*"}})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := stream.New(stream.Config{RTSPAddress: "127.0.0.1:0", Auth: mapAuth{"viewer", userPW},
		Policy: func() *access.Policy { return pol }, GOPCacheDisabled: os.Getenv("FANOUT_NO_GOP_CACHE") != ""})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.SetCameras(context.Background(), []stream.CameraSpec{{Name: "cam1", Streams: []stream.StreamSpec{{
		Name: "main", URL: cam.URL("main"), Username: "admin", Transport: "tcp", Revision: "1",
		Password: func(context.Context) (string, error) { return camPW, nil }}}}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		live := false
		for _, s := range srv.Streams() {
			live = live || s.State == stream.StateLive
		}
		if live {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("camera not live")
		}
		time.Sleep(20 * time.Millisecond)
	}
	readers := make([]*load.Reader, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := load.StartReader(context.Background(), i, load.ReaderConfig{Addr: srv.Addr().String(),
				Path: "cam1/main", User: "viewer", Password: userPW})
			if err != nil {
				errs <- err
				return
			}
			readers[i] = r
		})
	}
	wg.Wait()
	defer func() {
		for _, r := range readers {
			if r != nil {
				wg.Go(r.Close)
			}
		}
		wg.Wait()
	}()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := load.WaitReceiving(ctx, readers); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second)
	var lost0 uint64
	for _, r := range readers {
		lost0 += r.Stats().Lost
	}
	cpu0, t0 := rusageCPU(), time.Now()
	b.ResetTimer()
	for range b.N {
		time.Sleep(40 * time.Millisecond)
	}
	b.StopTimer()
	var lost uint64
	for _, r := range readers {
		lost += r.Stats().Lost
	}
	b.ReportMetric(float64(rusageCPU()-cpu0)/float64(time.Since(t0)), "cores")
	if s, err := load.SampleProc(os.Getpid()); err == nil {
		b.ReportMetric(float64(s.RSSKB)/1024, "RSS-MB")
	}
	if path := os.Getenv("FANOUT_HEAPPROFILE"); path != "" {
		// In-use memory while every reader is live (go test -memprofile is
		// written only after the readers are gone).
		runtime.GC()
		f, err := os.Create(fmt.Sprintf("%s.%d", path, n))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
		if g, err := os.Create(fmt.Sprintf("%s.goroutines.%d", path, n)); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(g, 1)
			g.Close()
		}
		b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/reader")
	}
	b.ReportMetric(float64(lost-lost0)/float64(n), "lost/reader")
}
