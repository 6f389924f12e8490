package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 5 * time.Second

// Serve serves the admin API on ln (a Unix listener) until ctx is done, then
// shuts down gracefully (requests in flight get a few seconds) and returns
// nil. It returns the error when the listener fails first.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	opts = opts.withDefaults()
	srv := &http.Server{
		Handler:           NewHandler(opts),
		ConnContext:       connContext,
		ReadHeaderTimeout: opts.ReadTimeout,
		ReadTimeout:       opts.ReadTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          opts.Logger.StandardLogger(nil),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin API: %w", err)
	}
	return nil
}

// Listen creates the admin socket at path. A stale socket file left by a
// dead daemon is replaced; a live one is an error. The socket is made 0660
// and group-owned by adminGroup (default DefaultAdminGroup) when that group
// exists, else 0600 with a warning on log (nil: none) naming the missing
// group. Authorization does not rest on these modes: every request is
// checked by peer credentials as well.
func Listen(path, adminGroup string, log hclog.Logger) (net.Listener, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if adminGroup == "" {
		adminGroup = DefaultAdminGroup
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the admin socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away or choose another --socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		conn, derr := d.Dial("unix", path)
		switch {
		case derr == nil:
			conn.Close()
			return nil, fmt.Errorf("another camwardend is serving %s", path)
		case errors.Is(derr, syscall.ECONNREFUSED):
			// Nobody listens: a stale socket from a daemon that died.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("removing stale admin socket: %w", err)
			}
		default:
			return nil, fmt.Errorf("checking existing admin socket %s: %w", path, derr)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("checking admin socket path: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on admin socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if gid := lookupGroupID(adminGroup); gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving admin socket %s to group %s: %w (run camwardend as root or as a member of %s)", path, adminGroup, err, adminGroup)
		}
		mode = 0o660
	} else {
		// Only root and the daemon's own user can connect now: say so, or
		// the admins' "permission denied" has no visible cause.
		log.Warn("admin group does not exist: the admin socket is 0600, so only root and the daemon's user can connect; create the group (groupadd) or set admin_group",
			"admin_group", adminGroup, "socket", path)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket: %w", err)
	}
	return ln, nil
}
