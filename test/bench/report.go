package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Row is one line of the results table. Latencies are milliseconds;
// percentiles are nearest-rank.
type Row struct {
	Name       string  `json:"name"`
	N          int     `json:"n"`
	Failures   int     `json:"failures"`
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	Mean       float64 `json:"mean_ms"`
	Max        float64 `json:"max_ms"`
	Throughput float64 `json:"throughput_per_s,omitempty"`
	Note       string  `json:"note,omitempty"`
}

func summarize(name string, samples []time.Duration) Row {
	r := Row{Name: name, N: len(samples)}
	if len(samples) == 0 {
		return r
	}
	ms := make([]float64, len(samples))
	sum := 0.0
	for i, d := range samples {
		ms[i] = float64(d.Nanoseconds()) / 1e6
		sum += ms[i]
	}
	slices.Sort(ms)
	r.P50, r.P95, r.P99 = pct(ms, 50), pct(ms, 95), pct(ms, 99)
	r.Mean, r.Max = sum/float64(len(ms)), ms[len(ms)-1]
	return r
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Target is one goal of issue 7 and whether this run met it.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Goal   string  `json:"goal"`
	Met    bool    `json:"met"`
	Margin string  `json:"margin,omitempty"`
}

// Coordinator holds the resource measurements of the worker process.
type Coordinator struct {
	RSSKBEmpty       int64   `json:"rss_kb_empty"`
	RSSKB200         int64   `json:"rss_kb_200_containers"`
	HWMKB            int64   `json:"vm_hwm_kb"`
	Tracked          int     `json:"tracked_containers"`
	Inspected        int     `json:"containers_with_memory_kb"`
	IdleCPUEmpty     float64 `json:"idle_cpu_pct_empty"`
	IdleCPU200       float64 `json:"idle_cpu_pct_200_containers"`
	DockerdCPUEmpty  float64 `json:"dockerd_cpu_pct_empty,omitempty"`
	DockerdCPU200    float64 `json:"dockerd_cpu_pct_200_containers,omitempty"`
	IdleWindowSecond float64 `json:"idle_window_s"`
}

// Results is the JSON file.
type Results struct {
	StartedAt   time.Time          `json:"started_at"`
	DurationS   float64            `json:"duration_s"`
	Host        map[string]string  `json:"host"`
	Settings    map[string]string  `json:"settings"`
	Rows        []Row              `json:"rows"`
	Ratios      map[string]float64 `json:"ratios"`
	Targets     []Target           `json:"targets"`
	Coordinator Coordinator        `json:"coordinator"`
	Breakdown   map[string]float64 `json:"breakdown_ms"`
	Stats       map[string]any     `json:"coordinator_stats,omitempty"` // since the a/b rounds began
	Leftovers   []string           `json:"leftover_containers,omitempty"`
	Error       string             `json:"error,omitempty"`
}

func (r *Results) add(row Row) Row {
	r.Rows = append(r.Rows, row)
	return row
}

func (r *Results) row(name string) (Row, bool) {
	for _, x := range r.Rows {
		if x.Name == name {
			return x, true
		}
	}
	return Row{}, false
}

func (r *Results) print(w io.Writer) {
	fmt.Fprintf(w, "\n%-44s %5s %5s %9s %9s %9s %9s %9s %9s\n",
		"measurement", "n", "fail", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms", "acq/s")
	fmt.Fprintln(w, strings.Repeat("-", 118))
	for _, x := range r.Rows {
		tp := ""
		if x.Throughput > 0 {
			tp = fmt.Sprintf("%9.1f", x.Throughput)
		}
		fmt.Fprintf(w, "%-44s %5d %5d %9.3f %9.3f %9.3f %9.3f %9.3f %9s\n",
			x.Name, x.N, x.Failures, x.P50, x.P95, x.P99, x.Mean, x.Max, tp)
	}
	c := r.Coordinator
	if c.Tracked > 0 || c.RSSKBEmpty > 0 {
		fmt.Fprintf(w, "\ncoordinator worker: RSS %.1f MB idle and empty, %.1f MB with %d tracked containers (VmHWM %.1f MB)\n",
			float64(c.RSSKBEmpty)/1024, float64(c.RSSKB200)/1024, c.Tracked, float64(c.HWMKB)/1024)
		fmt.Fprintf(w, "coordinator CPU while idle for %.0f s: %.2f %% of a core empty, %.2f %% with %d containers"+
			" (dockerd meanwhile: %.2f %%, %.2f %%; %d containers had memory_kb from the sweep)\n",
			c.IdleWindowSecond, c.IdleCPUEmpty, c.IdleCPU200, c.Tracked, c.DockerdCPUEmpty, c.DockerdCPU200, c.Inspected)
	}
	if len(r.Breakdown) > 0 {
		fmt.Fprintln(w, "\nwhere a cold start's time goes (p50, ms):")
		for _, k := range sortedKeys(r.Breakdown) {
			fmt.Fprintf(w, "  %-52s %9.2f\n", k, r.Breakdown[k])
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios:")
		for _, k := range sortedKeys(r.Ratios) {
			fmt.Fprintf(w, "  %-52s %9.3f\n", k, r.Ratios[k])
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets (issue 7):")
		for _, t := range r.Targets {
			mark := "MISSED"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(w, "  %-34s %10.3f %-6s goal %-10s %-6s %s\n", t.Name, t.Value, t.Unit, t.Goal, mark, t.Margin)
		}
	}
	if len(r.Leftovers) > 0 {
		fmt.Fprintf(w, "\nWARNING: %d container(s) of the instance were left after the fast stop\n", len(r.Leftovers))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nERROR: %s\n", r.Error)
	}
}

func (r *Results) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
