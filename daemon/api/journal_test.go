package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/camwarden/camwarden/daemon/api"
	"github.com/camwarden/camwarden/daemon/apitype"
)

// TestAuditVerifyJournalQuery: malformed or too many journal heads are
// refused before the backend sees them.
func TestAuditVerifyJournalQuery(t *testing.T) {
	rec := newRecorder(nil)
	sock := serve(t, t.TempDir(), api.Options{Backend: rec})
	hash, key := strings.Repeat("ab", 32), "0123456789abcdef"
	many := strings.Repeat(fmt.Sprintf("journal=1:%s:%s&", hash, key), apitype.MaxJournalHeads+1)
	for _, q := range []string{
		"journal=x:" + hash + ":" + key,
		"journal=1:" + hash[:10] + ":" + key,
		"journal=1:" + strings.ToUpper(hash) + ":" + key,
		"journal=1:" + hash,
		"journal=1:" + hash + ":" + key + ":extra",
		many,
	} {
		code, eb, _ := doRaw(t, sock, "GET", "/v1/audit/verify?"+q, nil, nil)
		if code != 400 || eb.Error == nil || eb.Error.Code != apitype.CodeInvalid {
			t.Errorf("?%.60s: %d %+v", q, code, eb.Error)
		}
	}
	if c, ok := rec.lastCall(); ok {
		t.Errorf("backend was called: %+v", c)
	}
}
