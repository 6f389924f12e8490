package stream

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// cameraGuard sees every response of a camera before gortsplib acts on it
// (Client.OnResponse runs before the client answers a 401 or follows a
// redirect) and removes what would make the client send the password where
// it must not go:
//   - a Basic challenge, unless the camera is configured with --allow-basic
//     (Basic puts the password on the wire in clear); Digest is always
//     preferred when both are offered;
//   - a Basic challenge after this path has seen Digest from the camera: a
//     downgrade, refused even with --allow-basic;
//   - a redirect to another host.
//
// With the challenge removed gortsplib has nothing to answer and fails
// before any Authorization header is written; refusal then says why.
type cameraGuard struct {
	camera     string
	host       string // the configured host[:port]
	allowBasic bool
	sawDigest  *atomic.Bool

	mu      sync.Mutex
	refusal error
}

func (g *cameraGuard) refuse(err error) {
	g.mu.Lock()
	if g.refusal == nil {
		g.refusal = err
	}
	g.mu.Unlock()
}

// err is the first refusal, or nil.
func (g *cameraGuard) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusal
}

func (g *cameraGuard) onResponse(res *base.Response) {
	switch {
	case res.StatusCode == base.StatusUnauthorized:
		g.checkChallenge(res)
	case res.StatusCode >= base.StatusMovedPermanently && res.StatusCode <= base.StatusUseProxy:
		g.checkRedirect(res)
	}
}

func (g *cameraGuard) checkChallenge(res *base.Response) {
	var digest, basic base.HeaderValue
	for _, v := range res.Header["WWW-Authenticate"] {
		scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		switch strings.ToLower(scheme) {
		case "digest":
			digest = append(digest, v)
		case "basic":
			basic = append(basic, v)
		}
	}
	switch {
	case len(digest) > 0:
		g.sawDigest.Store(true)
		res.Header["WWW-Authenticate"] = digest
	case len(basic) == 0:
		delete(res.Header, "WWW-Authenticate")
	case g.sawDigest.Load():
		delete(res.Header, "WWW-Authenticate")
		g.refuse(fmt.Errorf("camera %s asked for Basic authentication after Digest: refusing the downgrade, the password was not sent "+
			"(something in the path may be trying to read it; if the camera itself changed, camwarden camera set %s --allow-basic restarts its stream)", g.camera, g.camera))
	case !g.allowBasic:
		delete(res.Header, "WWW-Authenticate")
		g.refuse(fmt.Errorf("camera %s offers only Basic authentication, which sends its password in clear: refused, the password was not sent "+
			"(allow it with camwarden camera set %s --allow-basic, or enable Digest on the camera)", g.camera, g.camera))
	}
}

func (g *cameraGuard) checkRedirect(res *base.Response) {
	loc := res.Header["Location"]
	if len(loc) != 1 {
		return
	}
	u, err := base.ParseURL(loc[0])
	if err == nil && sameHost(u.Host, g.host) {
		return
	}
	delete(res.Header, "Location")
	g.refuse(fmt.Errorf("camera %s redirected to another host: not followed, the password was not sent there", g.camera))
}

// sameHost compares host[:port] forms, the RTSP default port filled in.
func sameHost(a, b string) bool {
	norm := func(h string) string {
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "554")
		}
		return strings.ToLower(h)
	}
	return norm(a) == norm(b)
}
