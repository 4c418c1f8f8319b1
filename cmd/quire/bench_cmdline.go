package main

import (
	"os"
	"runtime/debug"
	"strings"

	"github.com/quirelog/quire/client"
)

// commandLine is this process's command line as one would type it again,
// with the program called quire whatever path started it, so a result
// table can say exactly what produced it.
func commandLine() string {
	words := []string{"quire"}
	for _, a := range os.Args[1:] {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

// shellQuote single-quotes a word when a POSIX shell would otherwise split
// or expand it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, unsafeShellRune) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func unsafeShellRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_=+.,:/@%", r)
}

// buildRevision is the commit this binary was built from, with "+dirty"
// for a modified tree, or "unknown" without VCS information.
func buildRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev[:min(len(rev), 12)] + dirty
}

// codecName says which codec a producer uses, naming franz-go's default.
func codecName(c client.Compression) string {
	if c == client.CompressionDefault {
		return "snappy (franz-go default)"
	}
	return string(c)
}
