package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkScrape: one /metrics response for 100 streams and 1,000 sessions.
func BenchmarkScrape(b *testing.B) {
	streams := make([]Stream, 100)
	for i := range streams {
		streams[i] = Stream{Camera: fmt.Sprintf("cam%03d", i), Stream: "main", State: "live", LastFrame: time.Now(), Readers: 10}
	}
	sessions := make([]Session, 1000)
	for i := range sessions {
		sessions[i] = Session{Action: "read", Transport: "TCP"}
	}
	m := New("bench", Sources{
		Streams:  func() []Stream { return streams },
		Sessions: func() []Session { return sessions },
	})
	h := Handler(ServeOptions{Metrics: m})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		io.Copy(io.Discard, rec.Body)
	}
}
