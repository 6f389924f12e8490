// Package reliability holds the end-to-end reliability harness of
// camwarden: crash consistency of the admin API under SIGKILL, camera
// faults, misbehaving viewers, the test-secret scanner, and the soak run
// (TestSoak, enabled only by `make soak`, which sets CAMWARDEN_SOAK_DURATION).
// Everything runs the real binaries on 127.0.0.0/8.
package reliability
