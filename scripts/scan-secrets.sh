#!/usr/bin/env bash
# scan-secrets.sh DIR [FILE...] — fail if any file under DIR (or any FILE,
# e.g. the `go test` output) holds a test secret from testdata/test-secrets.txt,
# as is or URL-escaped (query, path and userinfo escaping, as Go's net/url
# writes them). It names the file and the line of the secrets list, never the
# secret. Exit 0: clean; 1: a secret was found; 2: usage or input error.
# SECRETS_FILE overrides the list.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
secrets=${SECRETS_FILE:-$here/../testdata/test-secrets.txt}

if [[ $# -lt 1 ]]; then
	echo "usage: $0 DIR [FILE...]" >&2
	exit 2
fi
dir=$1
shift
if [[ ! -d $dir ]]; then
	echo "scan-secrets: $dir is not a directory" >&2
	exit 2
fi
for f in "$@"; do
	if [[ ! -f $f ]]; then
		echo "scan-secrets: $f does not exist" >&2
		exit 2
	fi
done
if [[ ! -r $secrets ]]; then
	echo "scan-secrets: cannot read the secrets list $secrets" >&2
	exit 2
fi

# enc MODE S: S escaped like Go's url.QueryEscape (query), url.PathEscape
# (path) or the password of url.UserPassword (user).
enc() {
	local mode=$1 s=$2 out='' c h i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9_.~-])
			out+=$c
			continue
			;;
		esac
		case $mode in
		query) if [[ $c == ' ' ]]; then
			out+='+'
			continue
		fi ;;
		path) case $c in '$' | '&' | '+' | ':' | '=' | '@')
			out+=$c
			continue
			;;
		esac ;;
		user) case $c in '$' | '&' | '+' | ',' | ';' | '=')
			out+=$c
			continue
			;;
		esac ;;
		esac
		printf -v h '%%%02X' "'$c"
		out+=$h
	done
	printf '%s' "$out"
}

nfiles=$(find "$dir" -type f | wc -l)
hits=0
lineno=0
while IFS= read -r line || [[ -n $line ]]; do
	lineno=$((lineno + 1))
	line=${line%$'\r'}
	[[ -z $line || $line == \#* ]] && continue
	if ((${#line} < 5)); then
		echo "scan-secrets: line $lineno of $secrets is shorter than 5 characters; it would match ordinary text" >&2
		exit 2
	fi
	declare -A seen=()
	for form in "$line" "$(enc query "$line")" "$(enc path "$line")" "$(enc user "$line")"; do
		[[ -n ${seen[$form]:-} ]] && continue
		seen[$form]=1
		while IFS= read -r f; do
			[[ -z $f ]] && continue
			echo "scan-secrets: $f holds the test secret on line $lineno of $(basename "$secrets")" >&2
			hits=$((hits + 1))
		done < <(grep -rlaF -e "$form" -- "$dir" "$@" 2>/dev/null || true)
	done
	unset seen
done <"$secrets"

if ((hits > 0)); then
	echo "scan-secrets: FAIL: $hits leak(s) of test secrets in captured logs" >&2
	exit 1
fi
echo "scan-secrets: ok: no test secret in $nfiles file(s) under $dir${*:+ or in $*}"
