package apitype

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`ffmpeg -i rtsp://h/x -c copy -f rtsp {output}`, []string{"ffmpeg", "-i", "rtsp://h/x", "-c", "copy", "-f", "rtsp", "{output}"}},
		{`  a   b	c `, []string{"a", "b", "c"}},
		{`tool 'one arg with $HOME | and ;' "dq \"x\" \\ \n"`, []string{"tool", "one arg with $HOME | and ;", `dq "x" \ \n`}},
		{`a\ b c\|d ''`, []string{"a b", "c|d", ""}},
		{`x'y'"z"`, []string{"xyz"}},
		{`sh -c 'ffmpeg -i a -f rtsp "$1"' sh {output}`, []string{"sh", "-c", `ffmpeg -i a -f rtsp "$1"`, "sh", "{output}"}},
	} {
		got, err := SplitCommand(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`a | b`, `a; b`, `a && b`, `a > f`, `echo $X`, "a `b`", `a "$X"`, `a 'b`, `a "b`, `a \`, "a\nb", "a\x00b", `(a)`} {
		if _, err := SplitCommand(bad); err == nil || !strings.Contains(err.Error(), "without a shell") {
			t.Errorf("SplitCommand(%q) = %v, want a refusal stating the rule", bad, err)
		}
	}
}

func TestCheckExecCommand(t *testing.T) {
	if err := CheckExecCommand(`ffmpeg -i /dev/video0 -f rtsp {output}`); err != nil {
		t.Error(err)
	}
	if err := CheckExecCommand(`ffmpeg -i x -f rtsp rtsp://h/{output}x`); err != nil {
		t.Errorf("{output} inside an argument: %v", err)
	}
	for _, bad := range []string{``, `   `, `ffmpeg -i x`, `{output} x`, strings.Repeat("a", MaxExecLength+1) + " {output}"} {
		if err := CheckExecCommand(bad); err == nil {
			t.Errorf("CheckExecCommand(%q) accepted", bad)
		}
	}
	for _, ok := range []string{"rtmp://10.0.0.5/live/cam", "rtmps://10.0.0.5:443/app/key", "rtsp://h/x"} {
		if err := CheckStreamURL(ok); err != nil {
			t.Errorf("CheckStreamURL(%q): %v", ok, err)
		}
	}
	if StreamSource("", "x {output}") != SourceExec || StreamSource("rtmp://h/a", "") != SourceRTMP ||
		StreamSource("http://h/v.mjpg", "") != SourceHTTP || StreamSource("rtsp://h/", "") != SourceRTSP {
		t.Error("StreamSource")
	}
}

// FuzzSplitCommand: any input splits or is refused, never panics; what
// splits has no control characters and re-splits the same once quoted.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{`ffmpeg -i 'a b' {output}`, `a\ b "c\"d"`, `x | y`, `'`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := SplitCommand(s)
		if err != nil {
			return
		}
		var quoted []string
		for _, a := range args {
			if strings.ContainsAny(a, "\x00\n\r\x1b") {
				t.Fatalf("control character in %q", a)
			}
			if strings.Contains(a, "'") {
				return // single quotes cannot hold a quote; skip the round trip
			}
			quoted = append(quoted, "'"+a+"'")
		}
		again, err := SplitCommand(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, args) && len(args) > 0 {
			t.Fatalf("round trip of %q: %q, %v", args, again, err)
		}
	})
}

// TestCheckExecCommandRefusesURLCredentials: a password written into the
// command would be stored, shown and audited in clear; it is refused in any
// scheme and any argument, without quoting it.
func TestCheckExecCommandRefusesURLCredentials(t *testing.T) {
	const secret = "CamPassw0rdSecret"
	for _, bad := range []string{
		`ffmpeg -i rtsp://admin:` + secret + `@127.0.0.1:41775/main -c copy -f rtsp {output}`,
		`ffmpeg -i 'http://admin:` + secret + `@10.0.0.7/video.mjpg' -f rtsp {output}`,
		`sh -c 'ffmpeg -i "rtsp://admin:pa ss/` + secret + `@h/x" -f rtsp "$1"' sh {output}`,
		`vendor-tool --src=srt://u:` + secret + `@h:9000 --out {output}`,
		`ffmpeg -i rtsp://admin@10.0.0.7/x -f rtsp {output}`,
	} {
		err := CheckExecCommand(bad)
		if err == nil {
			t.Errorf("CheckExecCommand(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "CAMWARDEN_PASSWORD") || !strings.Contains(err.Error(), "--password-stdin") {
			t.Errorf("refusal does not say where credentials go: %v", err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("refusal quotes the secret: %v", err)
		}
	}
	for _, ok := range []string{
		`ffmpeg -i rtsp://10.0.0.7/x -f rtsp {output}`,
		`sh -c 'vendor-tool --password "$CAMWARDEN_PASSWORD" --out "$1"' sh {output}`,
		`ffmpeg -metadata author=me@example.org -i rtsp://h/x -f rtsp {output}`,
	} {
		if err := CheckExecCommand(ok); err != nil {
			t.Errorf("CheckExecCommand(%q): %v", ok, err)
		}
	}
}
