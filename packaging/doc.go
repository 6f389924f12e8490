// Package packaging holds no Go code of the product: it is the home of the
// .deb build (build-deb.sh, debian/, man/) and of the tests that gate it —
// systemd-analyze verify and security on the units in ../systemd, lintian on
// the built package, and an install/upgrade/remove/purge run in a throwaway
// copy-on-write root that never touches the host's dpkg database or accounts.
package packaging
