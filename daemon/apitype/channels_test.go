package apitype

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseChannels(t *testing.T) {
	good := map[string]string{
		"":          "[]",
		"1":         "[1]",
		"1,3-5":     "[1 3 4 5]",
		" 5 , 1-2 ": "[1 2 5]",
		"3,3,2-3":   "[2 3]",
		"1-128":     fmt.Sprint(seq(1, 128)),
		"16-16":     "[16]",
	}
	for in, want := range good {
		got, err := ParseChannels(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "129", "3-1", "1,", ",", "a", "1-", "-3", "1-2-3", "+1", "1.5", "99999999999999999999", strings.Repeat("1,", 300)} {
		if got, err := ParseChannels(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
	req := CameraAdoptRequest{Name: "nvr1", XAddr: "http://127.0.0.1/onvif/device_service", User: "admin", Channels: "4-2"}
	if err := req.Validate(); err == nil || !strings.Contains(err.Error(), "--channels") {
		t.Errorf("Validate of a backwards range: %v", err)
	}
}

func seq(a, b int) []int {
	var out []int
	for n := a; n <= b; n++ {
		out = append(out, n)
	}
	return out
}
