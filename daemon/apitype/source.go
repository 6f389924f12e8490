package apitype

import (
	"net/url"
	"regexp"
	"strings"
)

// SourceKind says what feeds a camera stream. It is derived from the stored
// stream: Exec set means exec; otherwise the URL's scheme decides.
type SourceKind string

const (
	SourceRTSP SourceKind = "rtsp" // pulled over RTSP (rtsp://, rtsps://)
	SourceExec SourceKind = "exec" // a command publishes it (--exec)
	SourceRTMP SourceKind = "rtmp" // pulled over RTMP by the built-in ffmpeg exec (rtmp://)
	SourceHTTP SourceKind = "http" // multipart MJPEG over HTTP (http://, https://)
)

// StreamSource is the kind of a stream with this URL and exec command.
func StreamSource(rawURL, exec string) SourceKind {
	if exec != "" {
		return SourceExec
	}
	if u, err := url.Parse(rawURL); err == nil {
		switch strings.ToLower(u.Scheme) {
		case "rtmp":
			return SourceRTMP
		case "http", "https":
			return SourceHTTP
		}
	}
	return SourceRTSP
}

// OutputPlaceholder is the argument text an exec source's command must hold:
// the daemon replaces it with the RTSP URL the command publishes to.
const OutputPlaceholder = "{output}"

// MaxExecLength bounds an exec command's text.
const MaxExecLength = 4096

// execQuotingRule is said in every refusal of a command's syntax.
const execQuotingRule = "camwarden runs the command without a shell: words are split at spaces; 'single quotes' keep " +
	"everything literally; \"double quotes\" allow \\\" and \\\\; a backslash outside quotes escapes the next character; " +
	"unquoted | & ; < > ( ) $ ` are refused (for a pipeline, run sh -c '...' explicitly)"

// SplitCommand splits an exec command into argv by the documented rule
// (execQuotingRule): no expansion of any kind happens.
func SplitCommand(cmd string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	const (
		plain = iota
		single
		double
	)
	mode := plain
	rs := []rune(cmd)
	for _, c := range rs {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return nil, invalidf("--exec must be one line without control characters; %s", execQuotingRule)
		}
	}
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch mode {
		case single:
			if c == '\'' {
				mode = plain
			} else {
				cur.WriteRune(c)
			}
		case double:
			switch {
			case c == '"':
				mode = plain
			case c == '$' || c == '`':
				// A shell would expand it here; camwarden would not.
				return nil, invalidf("--exec holds %q in double quotes, which a shell would expand and camwarden does not; %s", string(c), execQuotingRule)
			case c == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(c)
			}
		default:
			switch {
			case c == ' ' || c == '\t':
				if inWord {
					args = append(args, cur.String())
					cur.Reset()
					inWord = false
				}
				continue
			case c == '\'':
				mode = single
			case c == '"':
				mode = double
			case c == '\\':
				if i+1 >= len(rs) {
					return nil, invalidf("--exec ends with a lone backslash; %s", execQuotingRule)
				}
				i++
				cur.WriteRune(rs[i])
			case strings.ContainsRune("|&;<>()$`", c):
				return nil, invalidf("--exec holds an unquoted %q; %s", string(c), execQuotingRule)
			default:
				cur.WriteRune(c)
			}
			inWord = true
		}
	}
	if mode != plain {
		return nil, invalidf("--exec has an unclosed quote; %s", execQuotingRule)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// CredentialsInExec is the refusal of a command with user:password@ in a URL:
// the command text is stored, shown and audited, the password is not.
const CredentialsInExec = "--exec must not hold a URL with credentials (user:password@): put credentials in " +
	"--user/--password-stdin; the command gets them as CAMWARDEN_USER/CAMWARDEN_PASSWORD, never in argv"

// urlSchemeRe finds the start of a URL ("scheme://") inside an argument.
var urlSchemeRe = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)

// holdsURLUserinfo reports whether some URL in word has a userinfo part: an
// '@' between its "://" and the next URL's (or the word's end). That also
// covers passwords holding unescaped '/', ':' or spaces (sh -c '...' words),
// at the price of refusing an '@' later in a URL's path.
func holdsURLUserinfo(word string) bool {
	locs := urlSchemeRe.FindAllStringIndex(word, -1)
	for i, l := range locs {
		end := len(word)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if strings.Contains(word[l[1]:end], "@") {
			return true
		}
	}
	return false
}

// CheckExecCommand validates an exec source's command.
func CheckExecCommand(cmd string) error {
	if len(cmd) > MaxExecLength {
		return invalidf("--exec is longer than %d characters", MaxExecLength)
	}
	args, err := SplitCommand(cmd)
	if err != nil {
		return err
	}
	if len(args) == 0 || args[0] == "" {
		return invalidf("--exec needs a command, e.g. --exec 'ffmpeg -i /dev/video0 -c:v libx264 -f rtsp %s'", OutputPlaceholder)
	}
	for _, a := range args {
		if holdsURLUserinfo(a) {
			return invalidf("%s", CredentialsInExec)
		}
	}
	if strings.Contains(args[0], OutputPlaceholder) {
		return invalidf("--exec: the command itself cannot be %s", OutputPlaceholder)
	}
	for _, a := range args[1:] {
		if strings.Contains(a, OutputPlaceholder) {
			return nil
		}
	}
	return invalidf("--exec must pass %s (the RTSP URL to publish to) to the command, e.g. ... -f rtsp %s", OutputPlaceholder, OutputPlaceholder)
}
