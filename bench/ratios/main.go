// Command ratios summarises `go test -bench` output of several rounds: for
// every benchmark the median ns/op and allocs/op, and for every benchmark
// with a sibling named "floor" (same parent) its ratio to that floor, both as
// the ratio of the medians and as the median of the per-round ratios (each
// round's benchmark divided by the same round's floor, which cancels most of
// the noise of a shared machine).
//
//	go test -run '^$' -bench Verify -benchmem -count 10 . | go run ./bench/ratios
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:.*?\s([\d.]+) allocs/op)?`)

type series struct {
	ns, allocs []float64
}

func main() {
	results := map[string]*series{}
	var order []string
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		m := line.FindStringSubmatch(scanner.Text())
		if m == nil {
			continue
		}
		name := m[1]
		s := results[name]
		if s == nil {
			s = &series{}
			results[name] = s
			order = append(order, name)
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		s.ns = append(s.ns, ns)
		if m[3] != "" {
			allocs, _ := strconv.ParseFloat(m[3], 64)
			s.allocs = append(s.allocs, allocs)
		}
	}
	if len(order) == 0 {
		fmt.Fprintln(os.Stderr, "ratios: no benchmark lines on stdin")
		os.Exit(1)
	}
	fmt.Printf("%-36s %6s %12s %10s %14s %14s\n", "benchmark", "runs", "median ns/op", "allocs/op", "x floor (med)", "x floor (pair)")
	for _, name := range order {
		s := results[name]
		ratio, pair := "", ""
		if parent, _, ok := cutLast(name, "/"); ok {
			if floor := results[parent+"/floor"]; floor != nil && parent+"/floor" != name {
				ratio = fmt.Sprintf("%.3f", median(s.ns)/median(floor.ns))
				var pairs []float64
				for i := range min(len(s.ns), len(floor.ns)) {
					pairs = append(pairs, s.ns[i]/floor.ns[i])
				}
				pair = fmt.Sprintf("%.3f", median(pairs))
			}
		}
		allocs := ""
		if len(s.allocs) > 0 {
			allocs = fmt.Sprintf("%.0f", median(s.allocs))
		}
		fmt.Printf("%-36s %6d %12.0f %10s %14s %14s\n", name, len(s.ns), median(s.ns), allocs, ratio, pair)
	}
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
