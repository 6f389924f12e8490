package stream

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
)

// TestExecCredentialIsSingleUse: the exec source's publish credential is in
// the command's argv, so any local user can read it. It authenticates one
// ANNOUNCE only: a second ANNOUNCE with it from loopback is refused while
// the first publisher is connected, and also after a first session ended
// without recording (the command then gets a new start and a new
// credential).
func TestExecCredentialIsSingleUse(t *testing.T) {
	urlFile := filepath.Join(t.TempDir(), "output")
	// The command hands its {output} to the test (as a local user reading
	// /proc would) and waits; the test publishes in its place.
	script := writeScript(t, `echo "$1" > "$2.tmp" && mv "$2.tmp" "$2"
exec sleep 300
`)
	r := newRig(t, nil)
	r.srv.SetCameras(context.Background(), []CameraSpec{execSpec("once", []string{script, OutputPlaceholder, urlFile}, false)})
	output := func(not string) string {
		var out string
		waitFor(t, 30*time.Second, "the command's {output}", func() bool {
			b, _ := os.ReadFile(urlFile)
			out = strings.TrimSpace(string(b))
			return strings.HasPrefix(out, "rtsp://exec-") && out != not
		})
		return out
	}
	media := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	desc := &description.Session{Medias: []*description.Media{media}}
	publish := func(url string) (*gortsplib.Client, error) {
		c := &gortsplib.Client{Protocol: new(gortsplib.ProtocolTCP)}
		return c, c.StartRecording(url, desc)
	}

	// 1: the publisher records; a second ANNOUNCE with its credential is refused.
	first := output("")
	pub, err := publish(first)
	if err != nil {
		t.Fatalf("the command's own credential did not publish: %v\nlogs:\n%s", err, r.logs.String())
	}
	waitFor(t, 10*time.Second, "exec source live", func() bool { return r.status("once/main").State == StateLive })
	if c, err := publish(first); err == nil {
		c.Close()
		t.Error("a second ANNOUNCE with the credential was accepted while its publisher was connected")
	}
	if st := r.status("once/main"); st.State != StateLive {
		t.Errorf("the refused second publisher disturbed the first: %+v", st)
	}
	pub.Close()

	// 2: a session that announced and ended spends the credential too.
	second := output(first) // the command was restarted with a new credential
	u, err := base.ParseURL(second)
	if err != nil {
		t.Fatal(err)
	}
	ann := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: new(gortsplib.ProtocolTCP)}
	if err := ann.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.Announce(u, desc); err != nil {
		ann.Close()
		t.Fatalf("ANNOUNCE with the new credential: %v", err)
	}
	ann.Close()
	p := r.srv.lookupPath("once/main")
	waitFor(t, 20*time.Second, "the announcing session gone", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exec.session == nil
	})
	if c, err := publish(second); err == nil {
		c.Close()
		t.Error("the credential was accepted again after its first session ended")
	}
}
