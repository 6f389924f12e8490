#!/bin/sh
# build-deb.sh — build dist/camwarden_<version>_<arch>.deb from binaries that
# `make build` put in bin/. Needs only dpkg-deb and coreutils (no fakeroot:
# dpkg-deb --root-owner-group makes every file root:root).
#
# Usage: packaging/build-deb.sh [--version V] [--bin-dir DIR] [--out DIR] [--arch ARCH]
#                               [--revision N] [--compression TYPE]
#   --version  default: contents of VERSION at the repository root
#   --bin-dir  directory holding camwardend and camwarden (default: bin)
#   --out      output directory (default: dist)
#   --arch     Debian architecture (default: dpkg --print-architecture)
#   --revision Debian revision N: version V-N, changelog.Debian.gz (default:
#              none, a native package: version V, changelog.gz, as lintian wants)
#   --compression  dpkg-deb -Z type: xz (default), gzip, zstd or none
# SOURCE_DATE_EPOCH, when set, fixes every timestamp (reproducible builds).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

version=""
bindir="$root/bin"
outdir="$root/dist"
arch=""
revision=""
compression=xz
while [ $# -gt 0 ]; do
	case "$1" in
	--version) version=$2; shift 2 ;;
	--bin-dir) bindir=$2; shift 2 ;;
	--out) outdir=$2; shift 2 ;;
	--arch) arch=$2; shift 2 ;;
	--revision) revision=$2; shift 2 ;;
	--compression) compression=$2; shift 2 ;;
	-h|--help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -z "$version" ]; then
	version=$(tr -d ' \n' <"$root/VERSION")
fi
if [ -z "$arch" ]; then
	arch=$(dpkg --print-architecture)
fi
case "$version" in
[0-9]*) ;;
*) echo "build-deb.sh: version '$version' must start with a digit" >&2; exit 2 ;;
esac
changelog=changelog.gz
if [ -n "$revision" ]; then
	version="$version-$revision"
	changelog=changelog.Debian.gz
fi
for b in camwardend camwarden; do
	if [ ! -x "$bindir/$b" ]; then
		echo "build-deb.sh: $bindir/$b missing: run 'make build' first" >&2
		exit 1
	fi
done
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/camwarden-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
pkg="$stage/pkg"
doc="$pkg/usr/share/doc/camwarden"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
	"$pkg/usr/lib/sysusers.d" "$pkg/etc/camwarden" \
	"$pkg/usr/share/man/man1" "$pkg/usr/share/man/man8" \
	"$pkg/usr/share/bash-completion/completions" \
	"$pkg/usr/share/lintian/overrides" "$doc"

install -m 0755 "$bindir/camwardend" "$bindir/camwarden" "$pkg/usr/bin/"
install -m 0644 "$root/systemd/camwardend.service" "$root/systemd/camwardend-rtsp.socket" \
	"$pkg/lib/systemd/system/"
install -m 0644 "$root/systemd/camwarden.sysusers" "$pkg/usr/lib/sysusers.d/camwarden.conf"
install -m 0644 "$here/camwardend.conf" "$pkg/etc/camwarden/camwardend.conf"
install -m 0644 "$here/debian/lintian-overrides" "$pkg/usr/share/lintian/overrides/camwarden"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
# Uncompressed on purpose: Grafana and Prometheus read the files as they are.
install -m 0644 "$here/grafana-dashboard.json" "$doc/grafana-dashboard.json"
install -m 0644 "$here/prometheus-alerts.yml" "$doc/prometheus-alerts.yml"

# Bash completion comes from the CLI itself, so it always matches the binary.
comp="$pkg/usr/share/bash-completion/completions/camwarden"
if ! "$bindir/camwarden" completion bash >"$comp" || [ ! -s "$comp" ]; then
	echo "build-deb.sh: '$bindir/camwarden completion bash' failed or printed nothing" >&2
	exit 1
fi
chmod 0644 "$comp"

date_rfc=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
date_man=$(date -u +%Y-%m-%d -d "@$SOURCE_DATE_EPOCH")
for m in camwarden.1:man1 camwardend.8:man8; do
	src=${m%%:*}
	sec=${m##*:}
	sed -e "1s/\"[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]\" \"camwarden [^\"]*\"/\"$date_man\" \"camwarden $version\"/" \
		"$here/man/$src" | gzip -9n >"$pkg/usr/share/man/$sec/$src.gz"
done
sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date_rfc/" "$here/debian/changelog.in" |
	gzip -9n >"$doc/$changelog"

install -m 0755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$pkg/DEBIAN/"
echo /etc/camwarden/camwardend.conf >"$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles"

(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	xargs md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

size=$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
	"$here/debian/control.in" >"$pkg/DEBIAN/control"
chmod 0644 "$pkg/DEBIAN/control"

# Timestamps of the staged tree, for a reproducible archive.
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$outdir"
deb="$outdir/camwarden_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z$compression" --build "$pkg" "$deb" >/dev/null
echo "$deb"
