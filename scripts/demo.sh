#!/usr/bin/env bash
# make demo: three simulated ONVIF cameras, the daemon, discovery by a
# directed probe to 127.0.0.1 (never multicast on the LAN), adoption, and a
# user who can watch. Ctrl-C stops everything this script started, by PID.
# Overrides: DEMO_RTSP_PORT (8554), DEMO_DISCOVERY_PORT (3702),
# DEMO_CAMERAS (3), DEMO_STATE (demo-state), BIN (bin).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
STATE=${DEMO_STATE:-demo-state}
RTSP_PORT=${DEMO_RTSP_PORT:-8554}
DISCOVERY_PORT=${DEMO_DISCOVERY_PORT:-3702}
CAMERAS=${DEMO_CAMERAS:-3}
SOCK="$STATE/admin.sock"
pids=()

cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo stopped; state kept in $STATE (the next run resets it)"
}
trap cleanup INT TERM EXIT

randpw() { head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16; }
cw() { "$BIN/camwarden" --socket "$SOCK" "$@"; }

# A second run starts from a clean state, so it always behaves the same.
rm -rf "$STATE"
mkdir -p "$STATE"
chmod 700 "$STATE"
randpw > "$STATE/camera.password"
viewer_pw=$(randpw)

echo "starting $CAMERAS simulated cameras on 127.0.0.1 (logs: $STATE/camsim.log)"
"$BIN/camsim" --cameras "$CAMERAS" --addr 127.0.0.1 --discovery-port "$DISCOVERY_PORT" \
  --user admin --password-file "$STATE/camera.password" >"$STATE/camsim.out" 2>"$STATE/camsim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^READY' "$STATE/camsim.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q '^READY' "$STATE/camsim.out"; then
  echo "camsim did not start; its log ($STATE/camsim.log):"
  cat "$STATE/camsim.log"
  grep -qi 'address already in use' "$STATE/camsim.log" &&
    echo "hint: a port camsim needs is taken; pick another discovery port with e.g. DEMO_DISCOVERY_PORT=13702 make demo"
  exit 1
fi

echo "starting camwardend (logs: $STATE/camwardend.log)"
"$BIN/camwardend" --config /dev/null --state-dir "$STATE/state" --socket "$SOCK" \
  --rtsp-addr "127.0.0.1:$RTSP_PORT" --rtsps-addr 127.0.0.1:0 --discovery-interfaces none >"$STATE/camwardend.log" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")
# Wait until it answers, or stops: its own error (a port already in use)
# is what to show, not the CLI's "cannot reach".
up=
for _ in $(seq 150); do
  if cw status >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "camwardend did not start; its log ($STATE/camwardend.log):"
  cat "$STATE/camwardend.log"
  if grep -qi 'address already in use' "$STATE/camwardend.log"; then
    echo "hint: port $RTSP_PORT (RTSP, or its UDP pair) is taken; run e.g. DEMO_RTSP_PORT=18554 make demo"
  fi
  exit 1
fi

echo "discovering cameras by a directed probe to 127.0.0.1:$DISCOVERY_PORT"
cw discover --timeout 2s --target "127.0.0.1:$DISCOVERY_PORT"
# URN and name of each device, in the order discover lists them (by the
# names the devices report); each camera is adopted under its device's name
# when that is a valid camera name, else as camN.
mapfile -t devices < <(cw discover --timeout 1s --target "127.0.0.1:$DISCOVERY_PORT" | awk 'NR > 1 && $1 ~ /^urn:/ { print $1 " " $2 }')
[ "${#devices[@]}" -ge 1 ] || { echo "no camera found"; exit 1; }

i=0
names=()
for dev in "${devices[@]}"; do
  i=$((i + 1))
  urn=${dev%% *} name=${dev#* }
  [[ "$name" =~ ^[a-z0-9][a-z0-9_-]{0,63}$ ]] || name="cam$i"
  cw camera adopt "$name" --device "$urn" --user admin --password-stdin <"$STATE/camera.password" >/dev/null
  echo "adopted $urn as $name"
  names+=("$name")
done

printf '%s\n' "$viewer_pw" | cw user add viewer --password-stdin >/dev/null
cw grant viewer read '*' >/dev/null

echo "waiting for the streams to go live"
for _ in $(seq 100); do
  live=$(cw --json stream list | grep -o '"state": *"live"' | wc -l)
  [ "$live" -ge "$i" ] && break
  sleep 0.2
done
cw stream list

cat <<INFO

camwarden demo is running. User 'viewer' has this password (shown once): $viewer_pw

RTSP URLs:
INFO
for n in "${names[@]}"; do
  echo "  rtsp://127.0.0.1:$RTSP_PORT/$n/main   rtsp://127.0.0.1:$RTSP_PORT/$n/sub"
done
cat <<INFO

Try:
  ffprobe -rtsp_transport tcp 'rtsp://viewer:$viewer_pw@127.0.0.1:$RTSP_PORT/${names[0]}/main'
  ffplay  -rtsp_transport tcp 'rtsp://viewer:$viewer_pw@127.0.0.1:$RTSP_PORT/${names[0]}/main'
  $BIN/camwarden --socket $SOCK session list
  $BIN/camwarden --socket $SOCK revoke viewer read '*'    # cuts the viewer off at once

Press Ctrl-C to stop.
INFO
wait "${pids[@]}"
