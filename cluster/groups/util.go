package groups

import (
	"slices"
	"sort"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compactSorted sorts a list and drops its duplicates.
func compactSorted(in []int32) []int32 { return slices.Compact(sortedInt32(in)) }

func compactSortedStrings(in []string) []string {
	sort.Strings(in)
	return slices.Compact(in)
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

// codeOf is the Kafka error code of err.
func codeOf(err error) int16 { return kafkaerr.Code(err) }

func sortedInt32(in []int32) []int32 {
	sort.Slice(in, func(i, j int) bool { return in[i] < in[j] })
	return in
}
