package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// TestAuditVerifyJournalBody: malformed or too many journal heads are
// refused before the backend sees them; the most a request may carry fits
// in a body.
func TestAuditVerifyJournalBody(t *testing.T) {
	rec := newRecorder(nil)
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	hash, key := strings.Repeat("ab", 32), "0123456789abcdef"
	heads := func(n int, h apitype.AuditHead) string {
		req := apitype.AuditVerifyRequest{}
		for range n {
			req.Journal = append(req.Journal, h)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if full := heads(apitype.MaxJournalHeads, apitype.AuditHead{Seq: 1<<64 - 1, Hash: hash, KeyID: key}); len(full) > apitype.MaxBodyBytes {
		t.Fatalf("%d heads take %d bytes, more than a body may", apitype.MaxJournalHeads, len(full))
	}
	for _, body := range []string{
		`{"journal":[{"seq":"x","hash":"` + hash + `","key_id":"` + key + `"}]}`,
		heads(1, apitype.AuditHead{Seq: 1, Hash: hash[:10], KeyID: key}),
		heads(1, apitype.AuditHead{Seq: 1, Hash: strings.ToUpper(hash), KeyID: key}),
		heads(1, apitype.AuditHead{Seq: 1, Hash: hash}),
		heads(apitype.MaxJournalHeads+1, apitype.AuditHead{Seq: 1, Hash: hash, KeyID: key}),
	} {
		code, eb, _ := doRaw(t, sock, "POST", "/v1/audit/verify", map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
		if code != 400 || eb.Error == nil || eb.Error.Code != apitype.CodeInvalid {
			t.Errorf("%.80s: %d %+v", body, code, eb.Error)
		}
	}
	if c, ok := rec.lastCall(); ok {
		t.Errorf("backend was called: %+v", c)
	}
}
