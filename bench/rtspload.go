package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/camwarden/camwarden/bench/load"
)

// loadProc is a running cmd/rtspload; its JSON events arrive on events.
type loadProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan load.Event
	logs   *syncBuffer
	exited chan struct{}
}

// startLoad runs rtspload with args; stdinFirst (e.g. a password line) is
// written first and stdin stays open for commands.
func startLoad(bin string, stdinFirst string, args ...string) (*loadProc, error) {
	p := &loadProc{events: make(chan load.Event, 1024), logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, "rtspload"), args...)
	p.cmd.Stderr = p.logs
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rtspload: %w", err)
	}
	if stdinFirst != "" {
		if _, err := io.WriteString(p.stdin, stdinFirst); err != nil {
			p.kill()
			return nil, err
		}
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev load.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = load.Event{Event: "error", Error: "bad rtspload output: " + sc.Text()}
			}
			p.events <- ev
		}
		_ = p.cmd.Wait()
		close(p.events)
		close(p.exited)
	}()
	return p, nil
}

// next returns the next event named want, skipping others; errors on an
// "error" event, on exit and on ctx.
func (p *loadProc) next(ctx context.Context, want string) (load.Event, error) {
	for {
		select {
		case <-ctx.Done():
			return load.Event{}, fmt.Errorf("waiting for rtspload %s: %w\n%s", want, ctx.Err(), tail(p.logs.String(), 1500))
		case ev, ok := <-p.events:
			if !ok {
				return load.Event{}, fmt.Errorf("rtspload exited before %s\n%s", want, tail(p.logs.String(), 1500))
			}
			if ev.Event == want {
				return ev, nil
			}
			if ev.Event == "error" {
				return ev, fmt.Errorf("rtspload: %s", ev.Error)
			}
		}
	}
}

func (p *loadProc) command(c string) error {
	_, err := io.WriteString(p.stdin, c+"\n")
	return err
}

// finish closes stdin (rtspload then exits) and waits; SIGTERM to its PID
// after 20 s, SIGKILL 10 s later.
func (p *loadProc) finish() {
	p.stdin.Close()
	go func() {
		for range p.events {
		}
	}()
	select {
	case <-p.exited:
		return
	case <-time.After(20 * time.Second):
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

func (p *loadProc) kill() {
	_ = p.cmd.Process.Kill()
}

// writeSecretFile writes content to a 0600 file in dir.
func writeSecretFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}
