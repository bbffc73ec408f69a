// Command ratios summarises `go test -bench` output of several rounds: for
// every benchmark the median and minimum ns/op and the median allocs/op, and
// for every benchmark with a sibling named "floor" (same parent) its ratio to
// that floor three ways: the ratio of the medians, the median of the
// per-round ratios (each round's benchmark divided by the same round's floor,
// which cancels slow drifts of a shared machine), and the ratio of the
// minimums (the runs least disturbed by other processes).
//
// -ratio 'A:B<=T' (repeatable) adds the ratio of benchmark A to benchmark B
// (names without the Benchmark prefix, e.g. Verify/package:Verify/floor),
// with the spread of the per-round ratios, judged against the target T on
// the median of the per-round ratios; -allocs 'A<=N' judges A's median
// allocations per operation. The target part is optional.
//
//	go test -run '^$' -bench Verify -benchmem -count 10 ./alipay | go run ./bench/ratios \
//		-ratio 'Verify/package:Verify/floor<=0.70' -allocs 'Verify/package<=3'
package main

import (
	"bufio"
	"flag"
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

// check is one -ratio or -allocs: names, and the target (0: none).
type check struct {
	a, b   string
	target float64
}

func parseCheck(value string, pair bool) (check, error) {
	var c check
	names, target, hasTarget := strings.Cut(value, "<=")
	if hasTarget {
		t, err := strconv.ParseFloat(strings.TrimSpace(target), 64)
		if err != nil {
			return c, fmt.Errorf("target %q: %v", target, err)
		}
		c.target = t
	}
	if pair {
		a, b, ok := strings.Cut(names, ":")
		if !ok {
			return c, fmt.Errorf("%q: want A:B[<=target]", value)
		}
		c.a, c.b = "Benchmark"+strings.TrimSpace(a), "Benchmark"+strings.TrimSpace(b)
	} else {
		c.a = "Benchmark" + strings.TrimSpace(names)
	}
	return c, nil
}

func main() {
	var ratios, allocChecks []check
	flag.Func("ratio", "A:B[<=target]: the ratio of benchmark A to B, judged on the median of the per-round ratios", func(v string) error {
		c, err := parseCheck(v, true)
		ratios = append(ratios, c)
		return err
	})
	flag.Func("allocs", "A[<=target]: benchmark A's median allocs/op", func(v string) error {
		c, err := parseCheck(v, false)
		allocChecks = append(allocChecks, c)
		return err
	})
	flag.Parse()

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
	fmt.Printf("%-36s %4s %12s %10s %9s %8s %8s %8s\n", "benchmark", "runs", "median ns/op", "min ns/op", "allocs/op", "x floor", "x floor", "x floor")
	fmt.Printf("%-36s %4s %12s %10s %9s %8s %8s %8s\n", "", "", "", "", "", "(median)", "(pairs)", "(min)")
	for _, name := range order {
		s := results[name]
		ratio, pair, best := "", "", ""
		if parent, _, ok := cutLast(name, "/"); ok {
			if floor := results[parent+"/floor"]; floor != nil && parent+"/floor" != name {
				r := compare(s, floor)
				ratio, pair, best = fmt.Sprintf("%.3f", r.medians), fmt.Sprintf("%.3f", r.pairs), fmt.Sprintf("%.3f", r.mins)
			}
		}
		allocs := ""
		if len(s.allocs) > 0 {
			allocs = fmt.Sprintf("%.0f", median(s.allocs))
		}
		fmt.Printf("%-36s %4d %12.0f %10.0f %9s %8s %8s %8s\n", name, len(s.ns), median(s.ns), slices.Min(s.ns), allocs, ratio, pair, best)
	}

	if len(ratios) > 0 {
		fmt.Printf("\n%-62s %8s %8s %13s %8s  %s\n", "ratio", "medians", "pairs", "pairs spread", "mins", "target (on pairs)")
	}
	for _, c := range ratios {
		a, b := results[c.a], results[c.b]
		if a == nil || b == nil {
			fmt.Printf("%-62s missing benchmark\n", c.a+" / "+c.b)
			continue
		}
		r := compare(a, b)
		fmt.Printf("%-62s %8.3f %8.3f %6.3f-%.3f %8.3f  %s\n", strings.TrimPrefix(c.a, "Benchmark")+" / "+strings.TrimPrefix(c.b, "Benchmark"),
			r.medians, r.pairs, r.lo, r.hi, r.mins, verdict(r.pairs, c.target))
	}
	for _, c := range allocChecks {
		a := results[c.a]
		if a == nil || len(a.allocs) == 0 {
			fmt.Printf("%s: no allocs/op (run with -benchmem)\n", c.a)
			continue
		}
		fmt.Printf("%-62s %8.0f allocs/op  %s\n", strings.TrimPrefix(c.a, "Benchmark"), median(a.allocs), verdict(median(a.allocs), c.target))
	}
}

// comparison is a's time relative to b's: the ratio of the medians, the
// median, minimum and maximum of the per-round ratios, and the ratio of the
// minimums.
type comparison struct {
	medians, pairs, lo, hi, mins float64
}

func compare(a, b *series) comparison {
	var pairs []float64
	for i := range min(len(a.ns), len(b.ns)) {
		pairs = append(pairs, a.ns[i]/b.ns[i])
	}
	return comparison{
		medians: median(a.ns) / median(b.ns),
		pairs:   median(pairs),
		lo:      slices.Min(pairs),
		hi:      slices.Max(pairs),
		mins:    slices.Min(a.ns) / slices.Min(b.ns),
	}
}

func verdict(value, target float64) string {
	switch {
	case target == 0:
		return ""
	case value <= target:
		return fmt.Sprintf("<= %g met", target)
	default:
		return fmt.Sprintf("<= %g MISSED", target)
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
