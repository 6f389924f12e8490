package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/camwarden/camwarden/daemon/apitype"
)

// Token issuers, group mappings, the directory and token revocation (#13).
// They live in their own table, appended to the command table at start.
func init() { commands = append(commands, identityCommands...) }

// groupMapFlags are the flags shared by group map and group unmap.
func groupMapFlags(fs *flag.FlagSet) func(group string) (apitype.GroupMapping, error) {
	issuer := fs.String("issuer", "", "the token issuer whose claim value maps")
	value := fs.String("claim-value", "", "the value of the issuer's groups claim")
	dirGroup := fs.String("directory-group", "", "the DN of the directory group that maps")
	return func(group string) (apitype.GroupMapping, error) {
		m := apitype.GroupMapping{Group: group, Issuer: *issuer, ClaimValue: *value, DirectoryGroup: *dirGroup}
		return m, invalid(m.Validate())
	}
}

// groupMapCommand is group map or group unmap: the same flags, another call.
func groupMapCommand(path, summary, done string, call func(e *env, m apitype.GroupMapping) (*apitype.MutationResult, error)) command {
	return command{path: path, args: "GROUP (--issuer NAME --claim-value VALUE | --directory-group DN)", summary: summary, minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			mapping := groupMapFlags(fs)
			return func(e *env, args []string) error {
				m, err := mapping(args[0])
				if err != nil {
					return err
				}
				r, err := call(e, m)
				if err != nil {
					return err
				}
				return mutationDone(e, describeMapping(m)+done+m.Group, r)
			}
		}}
}

func describeMapping(m apitype.GroupMapping) string {
	if m.Issuer != "" {
		return fmt.Sprintf("issuer %s claim value %q", m.Issuer, m.ClaimValue)
	}
	return fmt.Sprintf("directory group %q", m.DirectoryGroup)
}

var identityCommands = []command{
	{path: "issuer add", args: "NAME (--jwks-url URL | --jwks-file FILE) --audience AUD [--iss ISS] [--subject-claim sub] [--groups-claim groups] [--insecure-http]",
		summary: "trust signed viewer tokens (JWT) from an issuer", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			jwksURL := fs.String("jwks-url", "", "URL of the issuer's JWKS (its public keys)")
			jwksFile := fs.String("jwks-file", "", "absolute path of a file holding the issuer's JWKS")
			aud := fs.String("audience", "", "the aud value tokens for this box carry")
			iss := fs.String("iss", "", "the iss value the issuer's tokens carry (default NAME)")
			sub := fs.String("subject-claim", "", "claim naming the viewer (default sub; a.b reaches into objects)")
			groups := fs.String("groups-claim", "", "claim listing the viewer's groups (default groups)")
			insecure := fs.Bool("insecure-http", false, "accept an http:// --jwks-url to a host other than loopback (anyone on the path could replace the keys)")
			return func(e *env, args []string) error {
				req := apitype.IssuerAddRequest{Name: args[0], Issuer: *iss, Audience: *aud, JWKSURL: *jwksURL,
					JWKSFile: *jwksFile, SubjectClaim: *sub, GroupsClaim: *groups, InsecureHTTP: *insecure}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.IssuerAdd(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "issuer "+args[0]+" added", r)
			}
		}},
	{path: "issuer list", summary: "list token issuers and the state of their keys", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.IssuerList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tISS\tAUDIENCE\tJWKS\tKEYS\tREFRESHED\tERROR")
					for _, is := range r.Issuers {
						src := is.JWKSURL
						if src == "" {
							src = is.JWKSFile
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", is.Name, is.Issuer, is.Audience, src, is.Keys,
							fmtTime(is.LastRefresh), orDash(is.LastError))
					}
				})
			}
		}},
	simple("issuer remove", "NAME", "remove a token issuer (its sessions end, its group mappings go)", func(e *env, a []string) (*apitype.MutationResult, string, error) {
		if err := apitype.CheckName("issuer", a[0]); err != nil {
			return nil, "", invalid(err)
		}
		r, err := e.cl.IssuerRemove(e.ctx, a[0])
		return r, "issuer " + a[0] + " removed", err
	}),
	groupMapCommand("group map", "count an issuer's claim value or a directory group as membership of a group", " mapped to group ",
		func(e *env, m apitype.GroupMapping) (*apitype.MutationResult, error) {
			return e.cl.GroupMapAdd(e.ctx, m)
		}),
	groupMapCommand("group unmap", "remove a group mapping", " no longer mapped to group ",
		func(e *env, m apitype.GroupMapping) (*apitype.MutationResult, error) {
			return e.cl.GroupMapRemove(e.ctx, m)
		}),
	{path: "group maps", summary: "list the group mappings", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				r, err := e.cl.GroupMapList(e.ctx)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintln(w, "GROUP\tFROM")
					for _, m := range r.Mappings {
						fmt.Fprintf(w, "%s\t%s\n", m.Group, describeMapping(m))
					}
				})
			}
		}},
	{path: "directory set", args: "--url ldaps://HOST --bind-dn DN --password-stdin --base-dn DN [--user-filter '(sAMAccountName=%s)'] [--group-attribute memberOf] [--group-filter F --group-base-dn DN] [--disabled-filter F] [--start-tls] [--ca-file FILE] [--timeout 5s] [--sync-interval 60s] [--insecure-ldap]",
		summary: "configure the LDAP / Active Directory directory", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			u := fs.String("url", "", "ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
			bindDN := fs.String("bind-dn", "", "DN of the service account that searches users")
			pwStdin := fs.Bool("password-stdin", false, "read the service account's password from stdin (needed the first time; absent: keep the stored one)")
			baseDN := fs.String("base-dn", "", "where users are searched")
			userFilter := fs.String("user-filter", "", "filter finding a user; %s is the escaped user name (default (sAMAccountName=%s))")
			groupAttr := fs.String("group-attribute", "", "attribute of the user listing its groups (default memberOf)")
			groupFilter := fs.String("group-filter", "", "search groups instead: filter with %s for the escaped user DN")
			groupBase := fs.String("group-base-dn", "", "where --group-filter searches (default --base-dn)")
			disabled := fs.String("disabled-filter", "", "filter matching disabled accounts (AD: (userAccountControl:1.2.840.113556.1.4.803:=2))")
			startTLS := fs.Bool("start-tls", false, "upgrade an ldap:// connection with StartTLS")
			caFile := fs.String("ca-file", "", "PEM file of the CA that signed the directory's certificate")
			timeout := fs.Duration("timeout", 0, "bound on each directory login or lookup (default 5s)")
			syncEvery := fs.Duration("sync-interval", 0, "how often live users' membership is re-read (default 60s)")
			insecure := fs.Bool("insecure-ldap", false, "accept ldap:// without --start-tls to a host other than loopback (passwords cross the network in clear)")
			return func(e *env, _ []string) error {
				var pw string
				if *pwStdin {
					var err error
					if pw, err = e.password(true, "", false); err != nil {
						return err
					}
				}
				req := apitype.DirectorySetRequest{URL: *u, StartTLS: *startTLS, CAFile: *caFile, BindDN: *bindDN, BindPassword: pw,
					BaseDN: *baseDN, UserFilter: *userFilter, GroupAttribute: *groupAttr, GroupFilter: *groupFilter,
					GroupBaseDN: *groupBase, DisabledFilter: *disabled, TimeoutMS: timeout.Milliseconds(), SyncIntervalMS: syncEvery.Milliseconds(),
					InsecureLDAP: *insecure}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.DirectorySet(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "directory set", r)
			}
		}},
	{path: "directory show", summary: "show the directory configuration (never its password)", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error {
				d, err := e.cl.DirectoryShow(e.ctx)
				if err != nil {
					return err
				}
				return e.print(d, func(w io.Writer) {
					if !d.Configured {
						fmt.Fprintln(w, "no directory configured (camwarden directory set)")
						return
					}
					fmt.Fprintf(w, "url\t%s\n", d.URL)
					fmt.Fprintf(w, "start tls\t%s\n", yesNo(d.StartTLS))
					fmt.Fprintf(w, "ca file\t%s\n", orDash(d.CAFile))
					fmt.Fprintf(w, "bind dn\t%s\n", d.BindDN)
					fmt.Fprintf(w, "bind password\t%s\n", map[bool]string{true: "set", false: "-"}[d.HasBindPassword])
					fmt.Fprintf(w, "base dn\t%s\n", d.BaseDN)
					fmt.Fprintf(w, "user filter\t%s\n", orDefault(d.UserFilter, "(sAMAccountName=%s)"))
					if d.GroupFilter == "" {
						fmt.Fprintf(w, "group attribute\t%s\n", orDefault(d.GroupAttribute, "memberOf"))
					} else {
						fmt.Fprintf(w, "group attribute\t%s\n", "- (groups are searched with the group filter)")
					}
					fmt.Fprintf(w, "group filter\t%s\n", orDash(d.GroupFilter))
					if d.GroupFilter != "" {
						fmt.Fprintf(w, "group base dn\t%s\n", orDefault(d.GroupBaseDN, d.BaseDN))
					}
					fmt.Fprintf(w, "disabled filter\t%s\n", orDash(d.DisabledFilter))
					fmt.Fprintf(w, "timeout\t%s\n", orDefault(msString(d.TimeoutMS), "5s"))
					fmt.Fprintf(w, "sync interval\t%s\n", orDefault(msString(d.SyncIntervalMS), "60s"))
					fmt.Fprintf(w, "changed\t%s\n", fmtTime(d.Changed))
				})
			}
		}},
	{path: "directory test", args: "USER --password-stdin", summary: "try a directory login (no session) and show the user's groups and mapped groups", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			pwStdin := fs.Bool("password-stdin", false, "read the user's password from stdin (one line)")
			return func(e *env, args []string) error {
				pw, err := e.password(*pwStdin, "Directory password for "+args[0]+": ", false)
				if err != nil {
					return err
				}
				req := apitype.DirectoryTestRequest{User: args[0], Password: pw}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.DirectoryTest(e.ctx, req)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "user\t%s\n", r.User)
					fmt.Fprintf(w, "dn\t%s\n", r.DN)
					for _, g := range r.Groups {
						fmt.Fprintf(w, "directory group\t%s\n", g)
					}
					fmt.Fprintf(w, "camwarden groups\t%s\n", orDash(strings.Join(r.MappedGroups, ", ")))
				})
			}
		}},
	simple("directory clear", "", "remove the directory configuration and its group mappings", func(e *env, _ []string) (*apitype.MutationResult, string, error) {
		r, err := e.cl.DirectoryClear(e.ctx)
		return r, "directory cleared", err
	}),
	{path: "token check", args: "--token-stdin", summary: "verify a viewer token (no session) and show what it says and the groups it maps to", maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			tokStdin := fs.Bool("token-stdin", false, "read the token from stdin (one line); tokens are never taken from the command line")
			return func(e *env, _ []string) error {
				if !*tokStdin {
					return usagef("pipe the token in with --token-stdin (tokens are never taken from the command line)")
				}
				tok, err := e.password(true, "", false)
				if err != nil {
					return err
				}
				req := apitype.TokenCheckRequest{Token: tok}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.TokenCheck(e.ctx, req)
				if err != nil {
					return err
				}
				return e.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "issuer\t%s\n", r.Issuer)
					fmt.Fprintf(w, "subject\t%s\n", r.Subject)
					fmt.Fprintf(w, "groups claim\t%s\n", orDash(strings.Join(r.Groups, ", ")))
					fmt.Fprintf(w, "jti\t%s\n", orDash(r.JTI))
					fmt.Fprintf(w, "key\t%s\n", orDash(r.KeyID))
					fmt.Fprintf(w, "expires\t%s\n", fmtTime(r.Expiry))
					fmt.Fprintf(w, "camwarden groups\t%s\n", orDash(strings.Join(r.MappedGroups, ", ")))
				})
			}
		}},
	{path: "token revoke", args: "JTI [--until RFC3339]", summary: "refuse a viewer token by its id (jti) and end its sessions", minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) runFunc {
			until := fs.String("until", "", "the token's exp, if known (default: 24 h, the longest a token may live)")
			return func(e *env, args []string) error {
				req := apitype.TokenRevokeRequest{JTI: args[0]}
				if *until != "" {
					t, err := time.Parse(time.RFC3339, *until)
					if err != nil {
						return usagef("--until must be an RFC 3339 time such as 2026-12-01T18:00:00Z")
					}
					req.Until = t
				}
				if err := req.Validate(); err != nil {
					return invalid(err)
				}
				r, err := e.cl.TokenRevoke(e.ctx, req)
				if err != nil {
					return err
				}
				return mutationDone(e, "token "+args[0]+" revoked", r)
			}
		}},
}

func msString(ms int64) string {
	if ms == 0 {
		return ""
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// orDefault shows an unset directory setting as the value the daemon uses
// for it (the defaults of daemon/identity/directory and daemon/identity.go).
func orDefault(v, def string) string {
	if v == "" || v == "-" {
		return def + " (default)"
	}
	return v
}
