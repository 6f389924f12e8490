package stream

import "net/url"

// secretForms lists the spellings under which a secret may show up in text:
// as is, query-escaped and path/userinfo-escaped.
func secretForms(sec string) []string {
	forms := []string{sec}
	add := func(v string) {
		for _, f := range forms {
			if f == v {
				return
			}
		}
		forms = append(forms, v)
	}
	add(url.QueryEscape(sec))
	add(url.PathEscape(sec))
	add(url.UserPassword("u", sec).String()[2:])
	return forms
}
