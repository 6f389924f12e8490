package directory

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// FuzzUserFilter: whatever a viewer types as a user name is either refused
// or becomes, once escaped, exactly one equality assertion whose value is
// the name byte for byte: never a wildcard, a second clause or a broken
// filter.
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "al*", "a)(uid=*", `\`, `\2a`, "x\x00y", "é(", ")(|(objectClass=*)", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkUserName(name) != nil {
			return
		}
		filter := fmt.Sprintf(DefaultUserFilter, ldap.EscapeFilter(name))
		p, err := ldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("name %q gave a broken filter %q: %v", name, filter, err)
		}
		if p.Tag != ldap.FilterEqualityMatch || len(p.Children) != 2 {
			t.Fatalf("name %q gave filter %q of tag %d", name, filter, p.Tag)
		}
		if got := p.Children[1].Data.String(); got != name {
			t.Fatalf("name %q asserted as %q", name, got)
		}
	})
}
