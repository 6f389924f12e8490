// Package onvif finds ONVIF cameras with WS-Discovery (multicast on every
// chosen interface, directed unicast probes, Hello/Bye) and talks to their
// device and media services with a small SOAP client of our own (contexts,
// timeouts, WS-UsernameToken with the camera's clock offset, HTTP Digest
// fallback, typed faults).
//
// github.com/use-go/onvif is used only for its request structs: its
// transport, parsing and discovery have the pitfalls listed in docs/design.md ("Facts about the dependencies").
// The package imports nothing of daemon/ or store/.
//
// Typical use by the daemon:
//
//	devs, err := onvif.Probe(ctx, onvif.ProbeOptions{Interfaces: ifaces, Targets: targets})
//	w, _ := onvif.NewWatcher(onvif.ProbeOptions{Interfaces: ifaces})
//	go w.Run(ctx, events) // Hello/Bye between periodic probes
//	res, err := onvif.Adopt(ctx, xaddr, onvif.ClientOptions{Username: u, Password: p})
//	// errors.Is(err, onvif.ErrUnauthorized | ErrUnreachable | ErrNoProfiles)
package onvif
