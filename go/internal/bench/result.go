package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Metric keys, as in the JSON output.
const (
	mFirstEventP50 = "first_event_p50_ms"
	mFirstEventP99 = "first_event_p99_ms"
	mEventDelayP50 = "event_delay_p50_ms"
	mEventDelayP99 = "event_delay_p99_ms"
	mJSONP50       = "json_p50_ms"
	mJSONP99       = "json_p99_ms"
	mThroughput    = "throughput_rps"
	mCPUPerRequest = "cpu_per_request_us"
	mStreamsServed = "streams_served"
	mStreamsPeak   = "streams_peak_rss_mib"
	mBodyTime      = "body_ms"
	mBodyGrowth    = "body_rss_growth_mib"
	mStartupP50    = "startup_p50_ms"
	mStartupMax    = "startup_max_ms"
	mIdleRSS       = "idle_rss_mib"
	mWSDelayP50    = "ws_message_delay_p50_ms"
	mWSDelayP99    = "ws_message_delay_p99_ms"
	mWSTurnP50     = "ws_turn_p50_ms"
	mPostTurnP50   = "post_turn_p50_ms"
)

// result gathers one target's samples, failures and final metrics.
type result struct {
	Name     string               `json:"name"`
	Metrics  map[string]float64   `json:"metrics"`
	Rounds   map[string][]float64 `json:"rounds,omitempty"`
	Failures []string             `json:"failures,omitempty"`

	mu        sync.Mutex
	failCount map[string]int
	failFirst map[string]string

	firstEvent, eventDelay, jsonLatency, startup []time.Duration
	wsDelay, wsTurn, postTurn                    []time.Duration
}

func newResult(name string) *result {
	return &result{
		Name:      name,
		Metrics:   map[string]float64{},
		Rounds:    map[string][]float64{},
		failCount: map[string]int{},
		failFirst: map[string]string{},
	}
}

// fail records a functional failure (a request that did not get the
// right answer); safe for concurrent use.
func (r *result) fail(phase string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failCount[phase] == 0 {
		r.failFirst[phase] = err.Error()
	}
	r.failCount[phase]++
}

// failed reports whether any failure was recorded.
func (r *result) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failCount) > 0
}

// finish computes the final metrics from the samples and rounds.
func (r *result) finish() {
	r.setPercentiles(mFirstEventP50, mFirstEventP99, r.firstEvent)
	r.setPercentiles(mEventDelayP50, mEventDelayP99, r.eventDelay)
	r.setPercentiles(mJSONP50, mJSONP99, r.jsonLatency)
	r.setPercentiles(mWSDelayP50, mWSDelayP99, r.wsDelay)
	for k, d := range map[string][]time.Duration{mWSTurnP50: r.wsTurn, mPostTurnP50: r.postTurn} {
		if len(d) > 0 {
			r.Metrics[k] = ms(percentile(d, 0.5))
		}
	}
	if len(r.startup) > 0 {
		r.Metrics[mStartupP50] = ms(percentile(r.startup, 0.5))
		r.Metrics[mStartupMax] = ms(slices.Max(r.startup))
	}
	for _, k := range []string{mThroughput, mCPUPerRequest, mBodyTime} {
		if v := r.Rounds[k]; len(v) > 0 {
			r.Metrics[k] = median(v)
		}
	}
	if v := r.Rounds[mBodyGrowth]; len(v) > 0 {
		r.Metrics[mBodyGrowth] = slices.Max(v)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	phases := make([]string, 0, len(r.failCount))
	for p := range r.failCount {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	r.Failures = nil
	for _, p := range phases {
		r.Failures = append(r.Failures, fmt.Sprintf("%s: %d failed, first: %s", p, r.failCount[p], r.failFirst[p]))
	}
}

func (r *result) setPercentiles(p50, p99 string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	r.Metrics[p50] = ms(percentile(d, 0.5))
	r.Metrics[p99] = ms(percentile(d, 0.99))
}

// percentile returns the nearest-rank q-quantile of d.
func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is (max - min) / median: how much rounds disagreed.
func spread(v []float64) float64 {
	if len(v) < 2 || median(v) == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / median(v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
