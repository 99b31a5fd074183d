package config

import (
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// Prefix starts the name of every jetsnap variable except the NATS ones.
const Prefix = "JETSNAP_"

// variable is one environment variable as declared by the struct tags.
type variable struct {
	name, def, desc string
}

// variables lists every variable, the NATS ones first, in struct order.
var variables = sync.OnceValue(func() []variable {
	var vs []variable
	for _, t := range []reflect.Type{reflect.TypeFor[NATS](), reflect.TypeFor[Config]()} {
		for f := range t.Fields() {
			if f.Tag.Get("ignored") == "true" {
				continue
			}
			vs = append(vs, variable{name: f.Tag.Get("envconfig"), def: f.Tag.Get("default"), desc: f.Tag.Get("desc")})
		}
	}
	return vs
})

// defaultOf returns the default of a variable, "" when it has none.
func defaultOf(name string) string {
	for _, v := range variables() {
		if v.name == name {
			return v.def
		}
	}
	return ""
}

// Unknown returns the JETSNAP_* names in environ ("NAME=value" entries, as
// os.Environ gives them) that jetsnap does not read: usually typos, such as
// JETSNAP_EVRY. The prefix is matched without regard to case, so
// jetsnap_every is reported too. The result is sorted, without duplicates.
func Unknown(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if len(name) < len(Prefix) || !strings.EqualFold(name[:len(Prefix)], Prefix) {
			continue
		}
		if !slices.ContainsFunc(variables(), func(v variable) bool { return v.name == name }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Suggest returns the known variable closest to name, for a "did you mean"
// hint, or "" when none is close.
func Suggest(name string) string {
	upper := strings.ToUpper(name)
	best, bestDist := "", 0
	for _, v := range variables() {
		d := editDistance(upper, v.name)
		if best == "" || d < bestDist {
			best, bestDist = v.name, d
		}
	}
	if bestDist > 3 || bestDist > len(strings.TrimPrefix(best, Prefix))/2 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// usageRows is the envconfig usage template for one row per variable.
const usageRows = `{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a table of every variable with its default and meaning, for
// jetsnap --help.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if _, err := io.WriteString(tw, "Environment variables (NATS_* as the NATS tools use them; an empty NATS_URL runs an embedded server):\n\nVARIABLE\tDEFAULT\tMEANING\n"); err != nil {
		return err
	}
	if err := envconfig.Usagef("", &NATS{}, tw, usageRows); err != nil {
		return err
	}
	if err := envconfig.Usagef("", &Config{}, tw, usageRows); err != nil {
		return err
	}
	return tw.Flush()
}
