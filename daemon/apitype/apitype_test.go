package apitype

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Response types never carry a secret: no password, sealed blob, key or
// secret field anywhere in them (HasPassword and KeyID only say whether or
// which, never what).
func TestResponseTypesHoldNoSecrets(t *testing.T) {
	responses := []any{
		Status{}, DiscoverResult{}, Camera{}, CameraList{}, StreamList{}, UserList{}, GroupList{},
		GrantList{}, SessionList{}, AuditList{}, AuditVerify{}, KeyRotate{}, MutationResult{}, ErrorBody{},
	}
	allowed := map[string]bool{"HasPassword": true, "KeyID": true, "Resealed": true, // Resealed is a count
		"Rekeys": true} // when and how often the audit chain was re-keyed, never a key
	seen := map[reflect.Type]bool{}
	var walk func(t *testing.T, typ reflect.Type, path string)
	walk = func(t *testing.T, typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() != reflect.TypeFor[Status]().PkgPath() {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := strings.ToLower(f.Name + " " + f.Tag.Get("json"))
			for _, bad := range []string{"password", "passwd", "secret", "sealed", "key", "hash_pw", "credential"} {
				if strings.Contains(name, bad) && !allowed[f.Name] {
					t.Errorf("response field %s.%s looks like a secret", path, f.Name)
				}
			}
			walk(t, f.Type, path+"."+f.Name)
		}
	}
	for _, r := range responses {
		typ := reflect.TypeOf(r)
		walk(t, typ, typ.Name())
	}
	// The requests that must carry a password do.
	for _, r := range []any{CameraAddRequest{}, CameraAdoptRequest{}, CameraSetRequest{}, UserAddRequest{}, UserPasswdRequest{}} {
		if _, ok := reflect.TypeOf(r).FieldByName("Password"); !ok {
			t.Errorf("%T has no Password", r)
		}
	}
}

func TestStripUserinfo(t *testing.T) {
	cases := map[string]string{
		"rtsp://admin:pw@10.0.0.5:554/s?x=1": "rtsp://10.0.0.5:554/s?x=1",
		"rtsp://admin@10.0.0.5/s":            "rtsp://10.0.0.5/s",
		"rtsp://10.0.0.5/s":                  "rtsp://10.0.0.5/s",
		"rtsp://a:b@[::1/":                   "(URL hidden: it may hold credentials)",
		"":                                   "",
	}
	for in, want := range cases {
		if got := StripUserinfo(in); got != want {
			t.Errorf("StripUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
	msg := `dial rtsp://admin:hunter2@10.0.0.5:554/s failed; retry http://u:p@h/x and rtsp://h/y`
	got := RedactURLsInText(msg)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "u:p") || !strings.Contains(got, "rtsp://10.0.0.5:554/s") || !strings.Contains(got, "rtsp://h/y") {
		t.Errorf("RedactURLsInText = %q", got)
	}
}

func FuzzStripUserinfo(f *testing.F) {
	f.Add("rtsp://admin:pw@10.0.0.5:554/s")
	f.Add("rtsp://%zz:pw@h/")
	f.Add("http://[::1]:80/onvif")
	f.Fuzz(func(t *testing.T, s string) {
		out := StripUserinfo(s)
		if u, err := parseURL(out); err == nil && u.User != nil && u.User.String() != "" {
			t.Fatalf("StripUserinfo(%q) = %q still has userinfo", s, out)
		}
		_ = RedactURLsInText(s)
	})
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
