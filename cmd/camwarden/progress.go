package main

import (
	"fmt"
	"os"
	"time"
)

// progress shows what a long call is doing, with the time left, on stdout
// when stdout is a terminal and the output is not --json; the line is
// erased when the returned stop is called. Pipes and scripts see nothing.
func (e *env) progress(what string, d time.Duration) (stop func()) {
	f, ok := e.stdout.(*os.File)
	if e.json || !ok || !isTerminal(f) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	end := time.Now().Add(d)
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			left := max(time.Until(end), 0).Round(time.Second)
			fmt.Fprintf(f, "\r\033[K%s… %s left", what, left)
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
