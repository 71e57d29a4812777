package config

import (
	"encoding"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Keys returns every key a configuration file may set, dotted as the
// decoder names them ("nntp.listen", "dns.update.server", "peer.feed"),
// sorted. They are read from Config's toml tags, so they cannot drift.
func Keys() []string {
	keysOnce.Do(func() {
		addKeys(&knownKeys, "", reflect.TypeOf(Config{}))
		sort.Strings(knownKeys)
	})
	return append([]string(nil), knownKeys...)
}

var (
	keysOnce  sync.Once
	knownKeys []string
)

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

func addKeys(out *[]string, prefix string, t reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !reflect.PointerTo(ft.Elem()).Implements(textUnmarshaler) {
			ft = ft.Elem() // an array of tables: [[peer]]
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textUnmarshaler) {
			*out = append(*out, key) // the table itself
			addKeys(out, key+".", ft)
			continue
		}
		*out = append(*out, key)
	}
}

// Suggest returns the known key nearest to an unknown one, or "" when none
// is near enough to be a likely misspelling.
func Suggest(key string) string {
	last := key[strings.LastIndexByte(key, '.')+1:]
	best, bestD := "", max(1, (len(last)+1)/2)+1
	for _, k := range Keys() {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the edit distance between a and b counting an
// insertion, a deletion, a substitution or a swap of two neighbouring
// letters as one edit (optimal string alignment), the usual typing slips.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j-1]+cost, d[i-1][j]+1, d[i][j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// unknownKeys describes the keys the decoder did not use, each with the
// nearest known key when one is near.
func unknownKeys(keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k
		if s := Suggest(k); s != "" {
			parts[i] += " (did you mean " + s + "?)"
		}
	}
	if len(parts) == 1 {
		return "unknown key " + parts[0]
	}
	return "unknown keys: " + strings.Join(parts, ", ")
}
