package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jetsnap/jetsnap/config"
	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bench's own streams, subjects and durables, so that against a real
// server it never touches the producers' EVENTS stream, jetsnap's
// SNAPSHOTS stream or a running jetsnap's durable. It deletes and recreates
// its two streams at start and deletes them at the end (unless --keep).
const (
	benchStream     = "JETSNAP_BENCH_EVENTS"
	benchSnapStream = "JETSNAP_BENCH_SNAPSHOTS"
	benchPattern    = "jetsnap-bench.{type}.{id}"
	benchSnapPrefix = "jetsnap-bench-snap"
	benchNoSnaps    = "jetsnap-bench-none" // a prefix with no snapshots: Load replays everything
	benchBare       = "jetsnap-bench-bare"
	benchDurable    = "jetsnap-bench-pipeline"
	benchLongID     = "long"
)

type benchOpts struct {
	events, actors, payload int
	mix                     string
	every, minEvents, max   int
	script                  string
	rounds                  int
	foldEvents, foldRounds  int
	longSpread              int
	lagDuration             time.Duration
	lagRate                 float64
	longEvents              int
	loads, replays          int
	memActors               int
	restartEvents           int
	jsonPath                string
	cpuProfile              string
	streamSubject           string
	seed                    uint64
	keep                    bool
}

// runBench is `jetsnap bench`: it measures jetsnap against ceilings
// measured in the same run (DESIGN.md; issue 7) and prints a table.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	var o benchOpts
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.events, "events", 400_000, "events in the workload")
	fs.IntVar(&o.actors, "actors", 2_000, "actors the workload's events are spread over (uniformly)")
	fs.IntVar(&o.payload, "payload", 150, "payload size in bytes (JSON)")
	fs.StringVar(&o.mix, "mix", "Deposited=65,Withdrawn=30,Opened=4,Closed=1", "event types and their weights")
	fs.IntVar(&o.every, "every", cfg.Every, "EVERY (default JETSNAP_EVERY)")
	fs.IntVar(&o.minEvents, "min", cfg.MinEvents, "MIN_EVENTS (default JETSNAP_MIN_EVENTS)")
	fs.IntVar(&o.max, "max", cfg.MaxEvents, "MAX_EVENTS (default JETSNAP_MAX_EVENTS)")
	fs.StringVar(&o.script, "script", filepath.Join(cfg.ScriptsDir, "account.js"), "the reducer; the native fold it is compared with is account.js's Go twin")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds of bare consumer then pipeline, each pipeline on a fresh durable and snapshot stream; the fastest of each counts")
	fs.IntVar(&o.foldEvents, "fold-events", 200_000, "events folded by the reducer comparison (the workload's first actors)")
	fs.IntVar(&o.foldRounds, "fold-rounds", 3, "rounds of the reducer comparison, each fold timed by the reducer then by the native fold; times are summed")
	fs.DurationVar(&o.lagDuration, "lag-duration", 10*time.Second, "how long events are published for the lag measurement")
	fs.Float64Var(&o.lagRate, "lag-rate", 0, "events/s for the lag measurement (0: half the maximum ingest rate measured)")
	fs.IntVar(&o.longEvents, "long-events", 100_000, "events of the long actor that Load reads (plus a tail of EVERY/2)")
	fs.IntVar(&o.longSpread, "long-spread", 100, "other events published between two events of the long actor's tail (it gets 1/(n+1) of the traffic then)")
	fs.IntVar(&o.loads, "loads", 200, "Load calls timed")
	fs.IntVar(&o.replays, "replays", 5, "full replays timed")
	fs.IntVar(&o.memActors, "memory-actors", 1_000_000, "tracked actors for the memory figure")
	fs.IntVar(&o.restartEvents, "restart-events", -1, "backlog a new process catches up on after a restart (default a quarter of --events; 0 skips)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the first pipeline round (pipeline and embedded server) to this file")
	fs.StringVar(&o.streamSubject, "stream-subject", "", "subject of the bench's event stream (default: as jetsnap's embedded mode makes EVENTS, "+consumer.StreamSubject(snapshotter.MustPattern(benchPattern).Filter())+"); "+snapshotter.MustPattern(benchPattern).Filter()+" lets the server skip filtering")
	fs.Uint64Var(&o.seed, "seed", 1, "workload seed")
	fs.BoolVar(&o.keep, "keep", false, "keep the bench's streams at the end (external server only)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: jetsnap bench [flags]

Measures jetsnap against ceilings measured in the same run, on NATS_URL or,
when it is empty, on its own embedded nats-server in a temporary directory:

  1. publishes a workload on stream %s (subjects %s);
  2. consumes it with a bare durable consumer that only acks, and folds a
     part of it with a native Go fold (account.js written in Go);
  3. runs jetsnap's pipeline (consumer, snapshotter, reducers, as `+"`run`"+`) on
     its own durable over the same events, and reports consume throughput,
     reducer throughput, read amplification, snapshot lag at half the
     maximum ingest rate, Load of a long actor against a full replay, and
     memory per tracked actor.

Other settings (JETSNAP_WORKERS, JETSNAP_MAX_ACK_PENDING, JETSNAP_BUFFER_BYTES,
JETSNAP_KEEP, ...) come from the environment, as for run.

The default workload takes about two minutes on 2 CPUs and its actors' tails
fit the default JETSNAP_BUFFER_BYTES. With more actors (--actors 10000
--events 1000000) tails no longer fit 64 MiB: captures then read them back
from the stream, which is far slower; give JETSNAP_BUFFER_BYTES about 300 MB.

`, benchStream, strings.ReplaceAll(benchPattern, "{type}.{id}", ">"))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jetsnap bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.restartEvents < 0 {
		o.restartEvents = max(o.events/4, 1)
	}
	if o.events < 1 || o.actors < 1 || o.payload < 0 || o.foldEvents < 1 || o.foldRounds < 1 || o.rounds < 1 || o.longSpread < 0 || o.longEvents < 1 || o.loads < 1 || o.replays < 1 || o.memActors < 1 {
		fmt.Fprintln(stderr, "jetsnap bench: --events, --actors, --fold-events, --fold-rounds, --rounds, --long-events, --loads, --replays and --memory-actors must be >= 1")
		return 2
	}
	log, _ := newLogger("text", "warn", stderr)
	b := &bench{o: o, cfg: cfg, log: log, progress: stderr, start: time.Now()}
	res, err := b.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap bench: %v\n", err)
		return 1
	}
	// With the server and every connection gone, the heap is quiet.
	res.BytesPerActor = snapshotter.TallyMemory(o.memActors, func(i int) string { return b.w.typ + "." + strconv.Itoa(i) })
	b.say("memory: %.1f bytes per tracked actor at %d actors", res.BytesPerActor, o.memActors)
	res.DurationS = time.Since(b.start).Seconds()
	res.Met = map[string]bool{
		"consume_ratio":      res.ConsumeRatio >= 1,
		"read_amplification": res.ReadAmplification <= 1.05,
		"reduce_ratio":       res.ReduceRatio >= 0.6,
		"lag_p99_ms":         res.LagP99Ms <= 50,
		"load_p50_ms":        res.LoadP50Ms <= 2,
		"load_speedup":       res.LoadSpeedup >= 100,
		"bytes_per_actor":    res.BytesPerActor <= 150,
	}
	res.print(stdout)
	if o.jsonPath != "" {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // subjects keep their ">"
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		if err := os.WriteFile(o.jsonPath, out.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "jetsnap bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// benchResult holds every figure; its JSON is what --json writes.
type benchResult struct {
	// Headline figures (issue 7).
	ConsumeRatio      float64 `json:"consume_ratio"`
	ReadAmplification float64 `json:"read_amplification"`
	ReduceRatio       float64 `json:"reduce_ratio"`
	LagP99Ms          float64 `json:"lag_p99_ms"`
	LoadP50Ms         float64 `json:"load_p50_ms"`
	LoadSpeedup       float64 `json:"load_speedup"`
	BytesPerActor     float64 `json:"bytes_per_actor"`

	// The run.
	Server       string  `json:"server"`
	GoVersion    string  `json:"go_version"`
	CPUs         int     `json:"cpus"`
	Events       int     `json:"events"`
	Actors       int     `json:"actors"`
	PayloadBytes int     `json:"payload_bytes"`
	Mix          string  `json:"mix"`
	Strategy     string  `json:"strategy"`
	Every        int     `json:"every"`
	MinEvents    int     `json:"min_events"`
	MaxEvents    int     `json:"max_events"`
	Workers      int     `json:"workers"`
	Folds        int     `json:"folds"` // folds at once (snapshotter.Config.Folds)
	Script       string  `json:"script"`
	DurationS    float64 `json:"duration_s"`

	// Throughput, events/s.
	PublishRate float64 `json:"publish_events_per_s"`
	BareRate    float64 `json:"bare_consume_events_per_s"`
	BareFilter  string  `json:"bare_filter"`
	// A consumer without acks (AckNone): the most batching acks could save.
	NoAckRate float64 `json:"no_ack_consume_events_per_s"`
	NoAckCPU  float64 `json:"no_ack_cpu_us_per_event"`
	// The bare consumer with jetsnap's filter (when it differs from the
	// stream's subject): what the server's filtering costs.
	BareFilteredRate float64 `json:"bare_consume_jetsnap_filter_events_per_s,omitempty"`
	Filter           string  `json:"jetsnap_filter"`
	ConsumeRate      float64 `json:"consume_events_per_s"`
	// Each round's pipeline rate over the same round's bare consumer:
	// the spread shows how much of consume_ratio is the machine's noise.
	ConsumeRoundRatios []float64 `json:"consume_round_ratios"`
	// Process CPU time per event (µs; with the embedded server, its work
	// too), the least over the rounds: on a shared machine this shows the
	// work, where throughput also shows what else ran.
	BareCPU         float64 `json:"bare_cpu_us_per_event"`
	BareFilteredCPU float64 `json:"bare_jetsnap_filter_cpu_us_per_event,omitempty"`
	ConsumeCPU      float64 `json:"consume_cpu_us_per_event"`
	CPURatio        float64 `json:"consume_cpu_ratio"` // bare / jetsnap: 1 means the same work per event
	// Every new actor costs reads of the streams before its events take
	// the hot path: when all actors were tracked, and the rate after that.
	WarmUpS         float64 `json:"consume_warm_up_s"`
	WarmUpEvents    uint64  `json:"consume_warm_up_events"`
	WarmConsumeRate float64 `json:"consume_after_warm_up_events_per_s"`
	ReduceRate      float64 `json:"reducer_events_per_s"`
	NativeRate      float64 `json:"native_fold_events_per_s"`
	FoldEvents      int     `json:"fold_events"`
	FoldCalls       int     `json:"fold_calls"`
	NativeMatch     bool    `json:"native_fold_matches_reducer"`

	// The pipeline over the workload (Snapshotter Stats).
	Consumed        uint64  `json:"consumed"`
	StreamReads     uint64  `json:"stream_reads"`
	ReadBackPerEvt  float64 `json:"read_back_per_event"`
	Resyncs         uint64  `json:"resyncs"`
	Snapshots       uint64  `json:"snapshots"`
	ReplayEvents    uint64  `json:"replay_events"`
	Evictions       uint64  `json:"evictions"`
	FoldsAhead      uint64  `json:"folds_ahead"`
	OtherMsgsPerEvt float64 `json:"direct_get_replies_per_event"`

	// A restart: the pipeline stopped, a backlog published, a new process
	// (no tallies, tails or kept bases) on the same durable catching up.
	RestartEvents      int     `json:"restart_events"`
	RestartRate        float64 `json:"restart_events_per_s"`
	RestartRatio       float64 `json:"restart_ratio"` // over the bare consumer's rate
	RestartCPU         float64 `json:"restart_cpu_us_per_event"`
	RestartStreamReads uint64  `json:"restart_stream_reads"`
	RestartWindowReads uint64  `json:"restart_window_reads"` // events read into catch-up windows
	RestartSnapshots   uint64  `json:"restart_snapshots"`

	// Snapshot lag.
	// The maximum ingest rate: events published as fast as they go while
	// the pipeline runs, over the time until it caught up with them.
	IngestRate   float64 `json:"ingest_events_per_s"`
	IngestEvents int     `json:"ingest_events"`
	LagRate      float64 `json:"lag_events_per_s"`
	LagEvents    int     `json:"lag_events"`
	LagSamples   int     `json:"lag_samples"`
	LagP50Ms     float64 `json:"lag_p50_ms"`
	LagMaxMs     float64 `json:"lag_max_ms"`
	// The consumer's largest backlog seen while publishing (sampled every
	// 50 ms), and the most captures queued or running (sampled every 10 ms).
	LagMaxPending    uint64 `json:"lag_max_undelivered"`
	LagMaxAckPending int    `json:"lag_max_unacked"`
	LagMaxQueued     int64  `json:"lag_max_captures_queued"`
	// Folds made ahead of placements (snapshotter/foldahead.go), and events
	// read back from the stream, while the lag was measured.
	LagFoldsAhead  uint64 `json:"lag_folds_ahead"`
	LagStreamReads uint64 `json:"lag_stream_reads"`
	// Where the slowest 1 % of snapshots (lag at or above p99) spent their
	// lag, on average: until jetsnap had the event and queued the capture,
	// waiting for a worker, and in the capture (fold, reads, publish), of
	// which waiting for a fold slot.
	LagSlowDueMs      float64 `json:"lag_slowest_until_due_ms"`
	LagSlowQueuedMs   float64 `json:"lag_slowest_queued_ms"`
	LagSlowCaptureMs  float64 `json:"lag_slowest_capture_ms"`
	LagSlowFoldWaitMs float64 `json:"lag_slowest_fold_wait_ms"`

	// Reader.
	LongEvents   int     `json:"long_actor_events"`
	LoadTail     int     `json:"load_tail_events"`
	LoadP99Ms    float64 `json:"load_p99_ms"`
	ReplayP50Ms  float64 `json:"replay_p50_ms"`
	ReplayP99Ms  float64 `json:"replay_p99_ms"`
	Loads        int     `json:"loads"`
	Replays      int     `json:"replays"`
	MemoryActors int     `json:"memory_actors"`

	Met map[string]bool `json:"targets_met"`
}

type bench struct {
	o        benchOpts
	cfg      *config.Config // the pipeline's configuration: the environment plus the bench's streams
	log      *slog.Logger
	progress io.Writer
	start    time.Time

	srv     *server.Server
	url     string
	w       *workload
	scripts *scripting.Registry
	script  *scripting.Script
	conns   []*nats.Conn
	clock   captureClock // times the pipeline's captures during the lag measurement
}

func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// dial opens a connection of its own, as a separate client would.
func (b *bench) dial(name string) (*nats.Conn, jetstream.JetStream, error) {
	cc := connConfig(b.cfg)
	cc.URL, cc.Name = b.url, "jetsnap-bench-"+name
	nc, err := consumer.Connect(cc, b.log)
	if err != nil {
		return nil, nil, err
	}
	b.conns = append(b.conns, nc)
	js, err := jetstream.New(nc)
	return nc, js, err
}

func (b *bench) run(ctx context.Context) (*benchResult, error) {
	o := b.o
	tmp, err := os.MkdirTemp("", "jetsnap-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	// The reducer, alone in a directory of its own.
	typ := strings.TrimSuffix(filepath.Base(o.script), ".js")
	src, err := os.ReadFile(o.script)
	if err != nil {
		return nil, fmt.Errorf("--script: %w", err)
	}
	scriptsDir := filepath.Join(tmp, "scripts")
	if err := os.MkdirAll(scriptsDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(scriptsDir, typ+".js"), src, 0o644); err != nil {
		return nil, err
	}
	if b.scripts, err = scripting.Load(scriptsDir, b.log); err != nil {
		return nil, err
	}
	b.script, _ = b.scripts.Lookup(typ)

	// The pipeline's configuration: the environment's, on the bench's streams.
	c := *b.cfg
	c.Stream, c.Durable, c.SnapshotStream, c.SnapshotPrefix = benchStream, benchDurable, benchSnapStream, benchSnapPrefix
	c.SubjectPattern = snapshotter.MustPattern(benchPattern)
	c.Every, c.MinEvents, c.MaxEvents = o.every, o.minEvents, o.max
	c.ScriptsDir = scriptsDir
	b.cfg = &c
	if err := snapshotterConfig(b.cfg).Strategy.Validate(); err != nil {
		return nil, err
	}
	types, cum, err := parseMix(o.mix)
	if err != nil {
		return nil, err
	}
	b.w = &workload{pattern: c.SubjectPattern, typ: typ, actors: o.actors, payload: o.payload, seed: o.seed, types: types, cum: cum}

	res := &benchResult{
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		Events: o.events, Actors: o.actors, PayloadBytes: o.payload, Mix: o.mix,
		Strategy: c.Strategy, Every: o.every, MinEvents: o.minEvents, MaxEvents: o.max,
		Workers: c.Workers, Folds: snapshotterConfig(b.cfg).WithDefaults().Folds, Script: o.script, Loads: o.loads, Replays: o.replays, MemoryActors: o.memActors,
	}

	// The server.
	if c.Embedded() {
		b.srv, err = consumer.StartEmbedded(consumer.EmbeddedConfig{Listen: "127.0.0.1:-1", DataDir: filepath.Join(tmp, "data")})
		if err != nil {
			return nil, err
		}
		defer func() { b.srv.Shutdown(); b.srv.WaitForShutdown() }()
		b.url = b.srv.ClientURL()
		res.Server = "embedded nats-server " + server.VERSION + " (file storage in a temp dir)"
	} else {
		b.url = c.NATS.URL
	}
	defer func() {
		for _, nc := range b.conns {
			nc.Close()
		}
	}()
	admin, adminJS, err := b.dial("admin")
	if err != nil {
		return nil, err
	}
	if res.Server == "" {
		res.Server = "nats-server " + admin.ConnectedServerVersion() + " at " + admin.ConnectedUrlRedacted()
	}
	if err := b.freshStreams(ctx, adminJS); err != nil {
		return nil, err
	}
	if !c.Embedded() && !o.keep {
		defer func() {
			_ = adminJS.DeleteStream(context.Background(), benchStream)
			_ = adminJS.DeleteStream(context.Background(), benchSnapStream)
		}()
	}
	b.say("%s; %d events of %d B over %d actors, mix %s, %s EVERY=%d MIN=%d MAX=%d, %d workers, %d folds at once",
		res.Server, o.events, o.payload, o.actors, o.mix, c.Strategy, o.every, o.minEvents, o.max, c.Workers, res.Folds)

	// 1. The workload.
	_, pubJS, err := b.dial("producer")
	if err != nil {
		return nil, err
	}
	d, lastSeq, err := publish(ctx, pubJS, o.events, func(i int) *nats.Msg { return b.w.msg(i, b.w.id(b.w.actor(i))) }, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("publish the workload: %w", err)
	}
	res.PublishRate = rate(o.events, d)
	b.say("published %d events in %v (%.0f events/s)", o.events, d.Round(time.Millisecond), res.PublishRate)

	// 2 and 3. The bare consumer and jetsnap's pipeline over the same
	// events, in turns; the last pipeline stays up for the lag and load.
	// The ceiling consumes the stream as its subject says (all of it is the
	// workload); jetsnap filters with its subject pattern, which the server
	// may take longer to apply, so the first round also times the bare
	// consumer with jetsnap's filter, to tell the two costs apart.
	streamSubject := b.streamSubject()
	jetsnapFilter := c.SubjectPattern.Filter()
	res.BareFilter, res.Filter = streamSubject, jetsnapFilter
	var p *pipe
	var best roundStats
	for r := range o.rounds {
		d, cpu, err := b.bare(ctx, adminJS, lastSeq, fmt.Sprintf("%s-%d", benchBare, r), streamSubject)
		if err != nil {
			return nil, fmt.Errorf("bare consumer: %w", err)
		}
		res.BareRate = max(res.BareRate, rate(o.events, d))
		res.BareCPU = minPositive(res.BareCPU, perEventUs(cpu, o.events))
		b.say("round %d: bare consumer (explicit acks, filter %s) %v (%.0f events/s, %.1f µs CPU/event)",
			r+1, streamSubject, d.Round(time.Millisecond), rate(o.events, d), perEventUs(cpu, o.events))
		if r == 0 {
			d, cpu, err := b.noAcks(ctx, adminJS, streamSubject)
			if err != nil {
				return nil, fmt.Errorf("consumer without acks: %w", err)
			}
			res.NoAckRate, res.NoAckCPU = rate(o.events, d), perEventUs(cpu, o.events)
			b.say("round %d: bare consumer without acks (AckNone, filter %s) %v (%.0f events/s, %.1f µs CPU/event)",
				r+1, streamSubject, d.Round(time.Millisecond), res.NoAckRate, res.NoAckCPU)
		}
		if r == 0 && jetsnapFilter != streamSubject {
			d, cpu, err := b.bare(ctx, adminJS, lastSeq, benchBare+"-filtered", jetsnapFilter)
			if err != nil {
				return nil, fmt.Errorf("bare consumer: %w", err)
			}
			res.BareFilteredRate, res.BareFilteredCPU = rate(o.events, d), perEventUs(cpu, o.events)
			b.say("round %d: bare consumer (explicit acks, jetsnap's filter %s) %v (%.0f events/s, %.1f µs CPU/event)",
				r+1, jetsnapFilter, d.Round(time.Millisecond), res.BareFilteredRate, res.BareFilteredCPU)
		}
		if p != nil {
			p.stop()
			_ = adminJS.DeleteConsumer(ctx, benchStream, p.durable)
			if err := b.freshSnapshots(ctx, adminJS); err != nil {
				return nil, err
			}
		}
		bareRate := rate(o.events, d)
		var rs roundStats
		stopProfile, err := b.profile(r == 0)
		if err != nil {
			return nil, err
		}
		p, rs, err = b.pipeline(ctx, adminJS, lastSeq, fmt.Sprintf("%s-%d", benchDurable, r))
		stopProfile()
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		defer p.stop()
		res.ConsumeCPU = minPositive(res.ConsumeCPU, perEventUs(rs.cpu, o.events))
		res.ConsumeRoundRatios = append(res.ConsumeRoundRatios, rate(o.events, rs.d)/bareRate)
		b.say("round %d: pipeline %v (%.0f events/s, %.1f µs CPU/event; every actor tracked after %v and %d events, %.0f events/s after that), %d snapshots, %d events read back, %d evictions, %d resyncs, %d folds made ahead",
			r+1, rs.d.Round(time.Millisecond), rate(o.events, rs.d), perEventUs(rs.cpu, o.events), rs.warm.Round(time.Millisecond), rs.warmConsumed, rs.warmRate(o.events),
			rs.published, rs.streamReads, rs.evictions, rs.resyncs, rs.foldsAhead)
		if r == 0 || rs.d < best.d {
			best = rs
		}
	}
	res.ConsumeRate = rate(o.events, best.d)
	if res.ConsumeCPU > 0 {
		res.CPURatio = res.BareCPU / res.ConsumeCPU
	}
	res.WarmUpS, res.WarmUpEvents, res.WarmConsumeRate = best.warm.Seconds(), best.warmConsumed, best.warmRate(o.events)
	res.ConsumeRatio = res.ConsumeRate / res.BareRate
	res.Consumed, res.StreamReads, res.Resyncs = best.consumed, best.streamReads, best.resyncs
	res.Snapshots, res.ReplayEvents, res.Evictions = best.published, best.replayEvents, best.evictions
	res.FoldsAhead = best.foldsAhead
	res.ReadBackPerEvt = float64(res.StreamReads) / float64(res.Consumed)
	res.ReadAmplification = float64(res.Consumed+res.StreamReads) / float64(res.Consumed)
	res.OtherMsgsPerEvt = float64(best.otherMsgs) / float64(res.Consumed)

	// A restart with a backlog; the new process runs the phases after it.
	if o.restartEvents != 0 {
		if p, err = b.restart(ctx, res, pubJS, adminJS, p); err != nil {
			return nil, fmt.Errorf("restart: %w", err)
		}
		defer p.stop()
		b.say("restart: a new process caught up on %d events in %.0f events/s (%.1f µs CPU/event), %d snapshots, %d events read back, %d read in catch-up windows",
			res.RestartEvents, res.RestartRate, res.RestartCPU, res.RestartSnapshots, res.RestartStreamReads, res.RestartWindowReads)
	}

	// The reducer beside the native fold, with the pipeline idle.
	b.folds(res)
	b.say("reducer %.0f events/s, native fold %.0f events/s (%d events in %d folds; outputs equal: %v)",
		res.ReduceRate, res.NativeRate, res.FoldEvents, res.FoldCalls, res.NativeMatch)

	// 4. Lag at half the maximum ingest rate: the rate at which events can
	// be published with jetsnap keeping up beside them, on the same machine.
	if err := b.ingest(ctx, res, pubJS, adminJS, p); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	b.say("ingest: %d events published as fast as they go, with the pipeline running: %.0f events/s until it had caught up",
		res.IngestEvents, res.IngestRate)
	res.LagRate = o.lagRate
	if res.LagRate <= 0 {
		res.LagRate = res.IngestRate / 2
	}
	if err := b.lag(ctx, res, pubJS, adminJS, p); err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	b.say("lag at %.0f events/s: p50 %.2f ms, p99 %.2f ms over %d snapshots; consumer backlog up to %d undelivered, %d unacknowledged; up to %d captures queued; %d folds made ahead, %d events read back",
		res.LagRate, res.LagP50Ms, res.LagP99Ms, res.LagSamples, res.LagMaxPending, res.LagMaxAckPending, res.LagMaxQueued, res.LagFoldsAhead, res.LagStreamReads)

	// 5. Load of a long actor against a full replay.
	if err := b.load(ctx, res, pubJS, adminJS, p); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	b.say("load p50 %.3f ms (tail %d events), full replay p50 %.1f ms", res.LoadP50Ms, res.LoadTail, res.ReplayP50Ms)
	return res, nil
}

// profile starts the --cpuprofile if on, and returns what stops it.
func (b *bench) profile(on bool) (stop func(), err error) {
	if !on || b.o.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(b.o.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// freshStreams deletes and recreates the bench's two streams.
func (b *bench) freshStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{benchStream, benchSnapStream} {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", name, err)
		}
	}
	if err := consumer.EnsureEventStream(ctx, js, benchStream, b.streamSubject()); err != nil {
		return err
	}
	return b.freshSnapshots(ctx, js)
}

// streamSubject is the subject of the bench's event stream: --stream-subject,
// or the one jetsnap's embedded mode gives EVENTS.
func (b *bench) streamSubject() string {
	if b.o.streamSubject != "" {
		return b.o.streamSubject
	}
	return consumer.StreamSubject(b.cfg.SubjectPattern.Filter())
}

// freshSnapshots empties the snapshot stream: each pipeline round starts
// with no snapshot, as the first does.
func (b *bench) freshSnapshots(ctx context.Context, js jetstream.JetStream) error {
	if err := js.DeleteStream(ctx, benchSnapStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", benchSnapStream, err)
	}
	return snapshotter.EnsureSnapshotStream(ctx, js, snapshotter.StreamConfig{
		Name: benchSnapStream, Prefix: benchSnapPrefix, Keep: b.cfg.Keep, Replicas: b.cfg.SnapshotReplicas,
	})
}

// roundStats is one pipeline round over the workload.
type roundStats struct {
	cpu                                       time.Duration // process CPU time (with an embedded server, its too)
	warm                                      time.Duration // when every actor was tracked
	warmConsumed                              uint64        // events consumed by then
	d                                         time.Duration
	consumed, streamReads, resyncs, published uint64
	replayEvents, evictions, otherMsgs        uint64
	foldsAhead                                uint64
}

// warmRate is the consume rate once every actor was tracked.
func (rs roundStats) warmRate(events int) float64 {
	if rs.warm == 0 || rs.warm >= rs.d || uint64(events) <= rs.warmConsumed {
		return 0
	}
	return float64(uint64(events)-rs.warmConsumed) / (rs.d - rs.warm).Seconds()
}

// pipeline runs jetsnap's pipeline on a fresh durable until it has
// acknowledged the workload, and leaves it running.
func (b *bench) pipeline(ctx context.Context, adminJS jetstream.JetStream, lastSeq uint64, durable string) (*pipe, roundStats, error) {
	nc, js, err := b.dial(durable)
	if err != nil {
		return nil, roundStats{}, err
	}
	start, cpu0 := time.Now(), cpuTime()
	p, err := b.startPipeline(ctx, nc, js, durable)
	if err != nil {
		return nil, roundStats{}, err
	}
	// Every new actor is first counted against the streams; once all are
	// tracked, events take the hot path. Note when that happens.
	st := p.snap.Stats()
	var warm time.Duration
	var warmConsumed uint64
	p.tick = func() {
		if warm == 0 && st.Tracked.Load() >= int64(b.o.actors) {
			warm, warmConsumed = time.Since(start), st.Consumed.Load()
		}
	}
	if err := b.caughtUp(ctx, adminJS, durable, lastSeq, uint64(b.o.events), p); err != nil {
		p.stop()
		return nil, roundStats{}, err
	}
	rs := roundStats{d: time.Since(start), cpu: cpuTime() - cpu0, warm: warm, warmConsumed: warmConsumed}
	p.tick = nil
	rs.consumed, rs.streamReads, rs.resyncs = st.Consumed.Load(), st.StreamReads.Load(), st.Resyncs.Load()
	rs.published, rs.replayEvents, rs.evictions = st.Published.Load(), st.ReplayEvents.Load(), st.Evictions.Load()
	rs.foldsAhead = st.FoldsAhead.Load()
	// Everything else the pipeline's connection received: direct-get
	// replies (tally resyncs, base snapshots, tails read back, end-of-batch
	// statuses) and pull statuses.
	other := int64(nc.Stats().InMsgs) - int64(rs.consumed) - int64(rs.published+st.UpToDate.Load()+st.Conflicts.Load())
	rs.otherMsgs = uint64(max(other, 0))
	return p, rs, nil
}

// publishStall is how long publish waits for acks when as many messages as
// the client allows are unacknowledged: long enough for a shared machine's
// stalls (the client's default, 200 ms, made runs fail with "stalled with
// too many outstanding async published messages").
const publishStall = time.Minute

// publish publishes n messages asynchronously and waits for every ack. If
// pace is set, it is called before each publish and may wait. acked, if
// set, gets each message's index and stream sequence. It returns the time
// taken and the highest sequence.
func publish(ctx context.Context, js jetstream.JetStream, n int, msg func(i int) *nats.Msg, pace func(i int), acked func(i int, seq uint64)) (time.Duration, uint64, error) {
	type pending struct {
		i int
		f jetstream.PubAckFuture
	}
	futures := make(chan pending, 16384)
	var (
		last    uint64
		failure error
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for p := range futures {
			select {
			case ack := <-p.f.Ok():
				last = max(last, ack.Sequence)
				if acked != nil {
					acked(p.i, ack.Sequence)
				}
			case err := <-p.f.Err():
				if failure == nil {
					failure = err
				}
			}
		}
	}()
	start := time.Now()
	var err error
	for i := 0; i < n && err == nil; i++ {
		if pace != nil {
			pace(i)
		}
		var f jetstream.PubAckFuture
		if f, err = js.PublishMsgAsync(msg(i), jetstream.WithStallWait(publishStall)); err == nil {
			futures <- pending{i, f}
		}
		if i&1023 == 0 && ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	close(futures)
	<-done
	if err == nil {
		err = failure
	}
	return time.Since(start), last, err
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// perEventUs is CPU time per event in microseconds.
func perEventUs(cpu time.Duration, n int) float64 {
	return float64(cpu) / float64(time.Microsecond) / float64(n)
}

// minPositive is the smaller of a and b, ignoring zeros (not measured yet).
func minPositive(a, b float64) float64 {
	if a <= 0 {
		return b
	}
	if b <= 0 {
		return a
	}
	return min(a, b)
}

// bare runs the ceiling: the durable consumer of package consumer, with the
// pipeline's settings and the given filter, whose handler only acks. A run
// that took AckWait or longer waited for an event to be delivered again (on
// a shared machine, now and then, one is delivered but never handed to the
// handler): that is not the ceiling, and it runs again, at most twice.
func (b *bench) bare(ctx context.Context, adminJS jetstream.JetStream, lastSeq uint64, durable, filter string) (d, cpu time.Duration, err error) {
	ackWait := b.consumerConfig(durable).AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second // package consumer's default
	}
	for try := 0; ; try++ {
		name := durable
		if try > 0 {
			name = fmt.Sprintf("%s-again%d", durable, try)
		}
		d, cpu, err = b.bareOnce(ctx, adminJS, lastSeq, name, filter)
		if err != nil || d < ackWait || try == 2 {
			return d, cpu, err
		}
		b.say("bare consumer %s took %v, more than its AckWait (%v): it waited for a redelivery, not a ceiling; running it again",
			name, d.Round(time.Millisecond), ackWait)
	}
}

func (b *bench) bareOnce(ctx context.Context, adminJS jetstream.JetStream, lastSeq uint64, durable, filter string) (d, cpu time.Duration, err error) {
	_, js, err := b.dial(durable)
	if err != nil {
		return 0, 0, err
	}
	var got atomic.Uint64
	cc := b.consumerConfig(durable)
	cc.Filter = filter
	cc.AckMode = consumer.AckEach // the ceiling the issue names: one explicit ack per event
	cons := consumer.New(cc, js, b.log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pipe{done: make(chan struct{}), ready: func() bool { return got.Load() >= uint64(b.o.events) }}
	start, cpu0 := time.Now(), cpuTime()
	go func() {
		defer close(p.done)
		p.err = cons.Run(ctx, func(m jetstream.Msg) {
			_ = m.Ack()
			got.Add(1)
		})
	}()
	err = b.caughtUp(ctx, adminJS, durable, lastSeq, 0, p)
	d, cpu = time.Since(start), cpuTime()-cpu0
	cancel()
	<-p.done
	_ = adminJS.DeleteConsumer(context.Background(), benchStream, durable)
	return d, cpu, err
}

// noAcks times a durable pull consumer with AckNone over the workload: what
// consuming costs without acknowledgements, the most that batching acks
// could save.
func (b *bench) noAcks(ctx context.Context, adminJS jetstream.JetStream, filter string) (d, cpu time.Duration, err error) {
	durable := benchBare + "-noack"
	_, js, err := b.dial(durable)
	if err != nil {
		return 0, 0, err
	}
	start, cpu0 := time.Now(), cpuTime()
	cons, err := js.CreateOrUpdateConsumer(ctx, benchStream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = adminJS.DeleteConsumer(context.Background(), benchStream, durable) }()
	var got atomic.Uint64
	done := make(chan struct{})
	n := uint64(b.o.events)
	cc, err := cons.Consume(func(jetstream.Msg) {
		if got.Add(1) == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(500))
	if err != nil {
		return 0, 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(10 * time.Minute):
		return 0, 0, errors.New("not done within 10 minutes")
	}
	return time.Since(start), cpuTime() - cpu0, nil
}

func (b *bench) consumerConfig(durable string) consumer.Config {
	return consumer.Config{
		Stream:        b.cfg.Stream,
		Durable:       durable,
		Filter:        b.cfg.SubjectPattern.Filter(),
		AckMode:       consumer.AckMode(b.cfg.AckMode),
		AckWait:       b.cfg.AckWait,
		MaxAckPending: b.cfg.MaxAckPending,
	}
}

// pipe is a running consumer: the bare one or jetsnap's pipeline.
type pipe struct {
	durable string
	snap    *snapshotter.Snapshotter // nil for the bare consumer
	cancel  context.CancelFunc
	done    chan struct{} // closed when it stopped
	err     error         // why it stopped, once done is closed
	ready   func() bool   // cheap check before asking the server
	tick    func()        // called on every poll while waiting, if set
	once    sync.Once
}

func (p *pipe) stop() {
	p.once.Do(func() {
		if p.cancel != nil {
			p.cancel()
		}
		<-p.done
	})
}

// startPipeline runs consumer → snapshotter → scripting as serve wires
// them, on the bench's durable. The jetsnap micro service and the scripts
// watcher are left out: neither is on the measured path, and a bench
// service would answer a production jetsnap's requests on a shared server.
func (b *bench) startPipeline(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, durable string) (*pipe, error) {
	snap, err := snapshotter.New(snapshotterConfig(b.cfg), nc, js, b.scripts, b.log,
		snapshotter.WithTracerProvider(b.clock.tracerProvider()))
	if err != nil {
		return nil, err
	}
	cc := b.consumerConfig(durable)
	cc.OnRebind = func() { snap.Reset("the durable consumer was bound again") }
	cc.OnReset = snap.Rewind
	cc.OnSessionEnd = snap.Flush
	cons := consumer.New(cc, js, b.log)
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe{durable: durable, snap: snap, cancel: cancel, done: make(chan struct{})}
	st := snap.Stats()
	p.ready = func() bool { return st.Queued.Load() == 0 }
	var wg sync.WaitGroup
	wg.Go(func() { _ = snap.Run(ctx) })
	go func() {
		p.err = cons.Run(ctx, snap.Handle)
		cancel()
		wg.Wait()
		close(p.done)
	}()
	return p, nil
}

// caughtUp waits until durable has acknowledged every event up to lastSeq
// (and, for the pipeline, has consumed at least consumed events and has no
// capture queued).
func (b *bench) caughtUp(ctx context.Context, js jetstream.JetStream, durable string, lastSeq, consumed uint64, p *pipe) error {
	deadline := time.Now().Add(10 * time.Minute)
	var cons jetstream.Consumer
	for {
		if p.tick != nil {
			p.tick()
		}
		ready := p.ready() && (p.snap == nil || p.snap.Stats().Consumed.Load() >= consumed)
		if ready {
			if cons == nil {
				cons, _ = js.Consumer(ctx, benchStream, durable)
			}
			if cons != nil {
				info, err := cons.Info(ctx)
				if err == nil && info.AckFloor.Stream >= lastSeq && info.NumAckPending == 0 {
					return nil
				}
			}
		}
		wait := time.Millisecond
		if ready {
			wait = 2 * time.Millisecond
		}
		select {
		case <-p.done:
			if p.err == nil {
				p.err = errors.New("stopped")
			}
			return p.err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not acknowledge seq %d within 10 minutes", durable, lastSeq)
		}
	}
}

// folds times the reducer (scripting.Runtime.Fold) and the native fold over
// the same folds of the workload's events (see foldBoth), summed over
// --fold-rounds rounds.
func (b *bench) folds(res *benchResult) {
	folds := b.w.foldSet(b.o.events, b.o.foldEvents, b.o.every)
	n := 0
	for _, f := range folds {
		n += len(f)
	}
	res.FoldEvents, res.FoldCalls = n, len(folds)
	rt := scripting.NewRuntime(limits(b.cfg))
	var dJS, dGo time.Duration
	res.NativeMatch = true
	for r := range b.o.foldRounds {
		js, native := foldBoth(rt, b.script, folds, func(actor string, outJS, outGo []byte, errJS, errGo error) {
			if errJS != nil || errGo != nil {
				b.log.Warn("fold failed", "actor", actor, "reducer_err", errJS, "native_err", errGo)
			}
			if r == 0 && res.NativeMatch && string(outJS) != string(outGo) {
				res.NativeMatch = false
				b.log.Warn("the native fold differs from the reducer: the reducer ratio compares different work",
					"actor", actor, "reducer", string(outJS), "native", string(outGo))
			}
		})
		dJS, dGo = dJS+js, dGo+native
	}
	n *= b.o.foldRounds
	res.ReduceRate, res.NativeRate = rate(n, dJS), rate(n, dGo)
	res.ReduceRatio = res.ReduceRate / res.NativeRate
}

// foldBoth folds each of folds with script and then with nativeFold, each
// actor's folds chained on the state of the one before, as captures chain
// on snapshots, and returns the time each took in all. Each fold is timed
// by the reducer and then at once by the native fold, so that both see the
// same machine: on a shared machine a burst of load then lands on both
// sides of the ratio instead of on one (timing all the reducer's folds,
// then all the native ones, gave ratios from 0.32 to 0.84 between runs).
// check sees the outputs of every fold.
func foldBoth(rt *scripting.Runtime, script *scripting.Script, folds [][]scripting.Event,
	check func(actor string, outJS, outGo []byte, errJS, errGo error)) (js, native time.Duration) {
	ctx := context.Background()
	var stateJS, stateGo []byte
	for i, evs := range folds {
		actor := evs[0].Actor
		if i == 0 || folds[i-1][0].Actor != actor {
			stateJS, stateGo = nil, nil
		}
		t0 := time.Now()
		outJS, errJS := rt.Fold(ctx, script, actor, stateJS, evs)
		t1 := time.Now()
		outGo, errGo := nativeFold(actor, stateGo, evs)
		js, native = js+t1.Sub(t0), native+time.Since(t1)
		check(actor, outJS, outGo, errJS, errGo)
		stateJS, stateGo = outJS, outGo
	}
	return js, native
}

// restart stops the caught-up pipeline p as SIGTERM does, publishes
// --restart-events more events, and times a new pipeline on the same
// durable and snapshot stream until it has acknowledged them: a process
// that knows nothing yet (no tallies, tails or kept bases) counts every
// actor against the streams, and finds each actor's events since its last
// snapshot in a catch-up window or, where the window does not reach,
// reads them back from the stream.
func (b *bench) restart(ctx context.Context, res *benchResult, pubJS, adminJS jetstream.JetStream, p *pipe) (*pipe, error) {
	p.stop()
	// As after a process's exit, its memory goes: the old pipeline's
	// tallies, tails and kept bases would weigh on the new one's GC.
	p.snap, p.ready, p.tick = nil, nil, nil
	n := b.o.restartEvents
	res.RestartEvents = n
	offset := b.o.events
	_, lastSeq, err := publish(ctx, pubJS, n, func(i int) *nats.Msg { return b.w.msg(offset+i, b.w.id(b.w.actor(offset+i))) }, nil, nil)
	if err != nil {
		return nil, err
	}
	nc, js, err := b.dial(p.durable + "-restarted")
	if err != nil {
		return nil, err
	}
	start, cpu0 := time.Now(), cpuTime()
	q, err := b.startPipeline(ctx, nc, js, p.durable)
	if err != nil {
		return nil, err
	}
	if err := b.caughtUp(ctx, adminJS, q.durable, lastSeq, uint64(n), q); err != nil {
		q.stop()
		return nil, err
	}
	d, cpu := time.Since(start), cpuTime()-cpu0
	st := q.snap.Stats()
	res.RestartRate, res.RestartCPU = rate(n, d), perEventUs(cpu, n)
	res.RestartRatio = res.RestartRate / res.BareRate
	res.RestartStreamReads, res.RestartSnapshots = st.StreamReads.Load(), st.Published.Load()
	res.RestartWindowReads = st.WindowReads.Load()
	return q, nil
}

// ingest publishes a quarter of the workload again, as fast as it goes,
// while the caught-up pipeline p runs, and sets res.IngestRate from the time
// until p has handled all of it: what the machine sustains with jetsnap
// beside the producers, which the lag is measured at half of.
func (b *bench) ingest(ctx context.Context, res *benchResult, pubJS, adminJS jetstream.JetStream, p *pipe) error {
	n := max(b.o.events/4, 1)
	res.IngestEvents = n
	offset := b.o.events + res.RestartEvents
	start := time.Now()
	_, lastSeq, err := publish(ctx, pubJS, n, func(i int) *nats.Msg { return b.w.msg(offset+i, b.w.id(b.w.actor(offset+i))) }, nil, nil)
	if err != nil {
		return err
	}
	if err := b.caughtUp(ctx, adminJS, p.durable, lastSeq, 0, p); err != nil {
		return err
	}
	res.IngestRate = rate(n, time.Since(start))
	return nil
}

// lag publishes at res.LagRate for --lag-duration and measures, for every
// event that makes its actor due, the time from just before its publish to
// the moment a subscriber on the snapshot subjects receives the snapshot
// that ends at it.
func (b *bench) lag(ctx context.Context, res *benchResult, pubJS, adminJS jetstream.JetStream, p *pipe) error {
	subNC, _, err := b.dial("lag")
	if err != nil {
		return err
	}
	type seen struct {
		lastSeq uint64
		at      time.Duration
	}
	var (
		mu   sync.Mutex
		got  []seen
		base = time.Now()
	)
	sub, err := subNC.Subscribe(benchSnapPrefix+".>", func(m *nats.Msg) {
		at := time.Since(base)
		seq, err := strconv.ParseUint(m.Header.Get(snapshotter.HeaderLastSeq), 10, 64)
		if err == nil {
			mu.Lock()
			got = append(got, seen{seq, at})
			mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := subNC.Flush(); err != nil {
		return err
	}
	n := max(int(res.LagRate*b.o.lagDuration.Seconds()), 1)
	res.LagEvents = n
	sent := make([]time.Duration, n)
	seqs := make([]uint64, n)
	offset := b.o.events + res.RestartEvents + res.IngestEvents
	start := time.Now()
	pace := func(i int) {
		for {
			due := time.Duration(float64(i) / res.LagRate * float64(time.Second))
			if wait := due - time.Since(start); wait > 0 {
				time.Sleep(min(wait, time.Millisecond))
				continue
			}
			break
		}
		sent[i] = time.Since(base)
	}
	// How far behind the consumer falls while the events come: events not
	// yet delivered (NumPending), delivered but not acknowledged, and
	// captures waiting for a worker.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		cons, err := adminJS.Consumer(watchCtx, benchStream, p.durable)
		if err != nil {
			return
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
			res.LagMaxQueued = max(res.LagMaxQueued, p.snap.Stats().Queued.Load())
			if i%5 != 0 {
				continue
			}
			if info, err := cons.Info(watchCtx); err == nil {
				res.LagMaxPending = max(res.LagMaxPending, info.NumPending)
				res.LagMaxAckPending = max(res.LagMaxAckPending, info.NumAckPending)
			}
		}
	}()
	st := p.snap.Stats()
	ahead0, reads0 := st.FoldsAhead.Load(), st.StreamReads.Load()
	b.clock.start()
	_, lastSeq, err := publish(ctx, pubJS, n, func(i int) *nats.Msg { return b.w.msg(offset+i, b.w.id(b.w.actor(offset+i))) }, pace,
		func(i int, seq uint64) { seqs[i] = seq })
	stopWatch()
	<-watched
	if err != nil {
		b.clock.stop()
		return err
	}
	err = b.caughtUp(ctx, adminJS, p.durable, lastSeq, 0, p)
	times := b.clock.stop()
	if err != nil {
		return err
	}
	res.LagFoldsAhead, res.LagStreamReads = st.FoldsAhead.Load()-ahead0, st.StreamReads.Load()-reads0
	if err := subNC.Flush(); err != nil {
		return err
	}
	at := make(map[uint64]time.Duration, n)
	for i, seq := range seqs {
		at[seq] = sent[i]
	}
	mu.Lock()
	defer mu.Unlock()
	var lags []time.Duration
	type sample struct {
		seq uint64
		lag time.Duration
	}
	var samples []sample
	for _, s := range got {
		if t, ok := at[s.lastSeq]; ok {
			lags = append(lags, s.at-t)
			samples = append(samples, sample{s.lastSeq, s.at - t})
		}
	}
	if len(lags) == 0 {
		return fmt.Errorf("no snapshot during the %v of paced publishing: raise --lag-duration", b.o.lagDuration)
	}
	res.LagSamples = len(lags)
	p99 := pct(lags, 0.99)
	res.LagP50Ms, res.LagP99Ms, res.LagMaxMs = ms(pct(lags, 0.50)), ms(p99), ms(pct(lags, 1))
	var due, queued, captured, foldWait time.Duration
	slow := 0
	for _, s := range samples {
		t, ok := times[s.seq]
		if s.lag < p99 || !ok {
			continue
		}
		slow++
		due += t.due.Sub(base) - at[s.seq]
		queued += t.started.Sub(t.due)
		captured += t.ended.Sub(t.started)
		foldWait += t.foldWait
	}
	if slow > 0 {
		res.LagSlowDueMs, res.LagSlowQueuedMs, res.LagSlowCaptureMs = ms(due)/float64(slow), ms(queued)/float64(slow), ms(captured)/float64(slow)
		res.LagSlowFoldWaitMs = ms(foldWait) / float64(slow)
	}
	return nil
}

// load publishes the long actor's events, waits for its snapshots, and
// times Reader.Load (latest snapshot + tail) against a full replay (the
// same Load with no snapshot to start from). The long actor's history is
// published in one burst; the EVERY/2 events of its tail (the mean tail
// under the strategy) each come after --long-spread events of other actors,
// so that reading the tail scans the stream as it would for a busy actor
// among others.
func (b *bench) load(ctx context.Context, res *benchResult, pubJS, adminJS jetstream.JetStream, p *pipe) error {
	tail := max(b.o.every/2, 1)
	n := b.o.longEvents + tail
	res.LongEvents = n
	offset := b.o.events + res.RestartEvents + res.IngestEvents + res.LagEvents
	spread := b.o.longSpread
	msg := func(i int) *nats.Msg {
		if i < b.o.longEvents || (i-b.o.longEvents)%(spread+1) == spread {
			return b.w.msg(offset+i, benchLongID)
		}
		return b.w.msg(offset+i, b.w.id(b.w.actor(offset+i)))
	}
	_, lastSeq, err := publish(ctx, pubJS, b.o.longEvents+tail*(spread+1), msg, nil, nil)
	if err != nil {
		return err
	}
	if err := b.caughtUp(ctx, adminJS, p.durable, lastSeq, 0, p); err != nil {
		return err
	}
	nc, _, err := b.dial("reader")
	if err != nil {
		return err
	}
	actor := b.w.typ + "." + benchLongID
	reader := snapshotter.NewReader(readerConfig(b.cfg), nc, b.scripts)
	rc := readerConfig(b.cfg)
	rc.SnapshotPrefix = benchNoSnaps
	replayer := snapshotter.NewReader(rc, nc, b.scripts)

	timeIt := func(r *snapshotter.Reader, runs, warmUp int) ([]time.Duration, snapshotter.State, error) {
		var st snapshotter.State
		var out []time.Duration
		for i := range runs + warmUp {
			t := time.Now()
			var err error
			if st, err = r.Load(ctx, actor); err != nil {
				return nil, st, err
			}
			if i >= warmUp {
				out = append(out, time.Since(t))
			}
		}
		return out, st, nil
	}
	loads, st, err := timeIt(reader, b.o.loads, 3)
	if err != nil {
		return err
	}
	if st.Version != uint64(n) || st.Base.Version == 0 {
		return fmt.Errorf("reader: %s loaded at version %d on a snapshot at version %d, want %d on a snapshot", actor, st.Version, st.Base.Version, n)
	}
	res.LoadTail = st.Folded
	replays, rst, err := timeIt(replayer, b.o.replays, 1)
	if err != nil {
		return err
	}
	if rst.Base.Version != 0 || rst.Folded != n || string(rst.State) != string(st.State) {
		return fmt.Errorf("the full replay of %s folded %d events from version %d, want %d from 0 and the same state", actor, rst.Folded, rst.Base.Version, n)
	}
	res.LoadP50Ms, res.LoadP99Ms = ms(pct(loads, 0.5)), ms(pct(loads, 0.99))
	res.ReplayP50Ms, res.ReplayP99Ms = ms(pct(replays, 0.5)), ms(pct(replays, 0.99))
	res.LoadSpeedup = res.ReplayP50Ms / res.LoadP50Ms
	return nil
}

// pct is the q-quantile of ds (nearest rank); it sorts ds.
func pct(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// print writes the table: each figure of jetsnap beside its baseline
// measured in the same run, their ratio and the target.
func (r *benchResult) print(w io.Writer) {
	ok := func(k string) string {
		if r.Met[k] {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "jetsnap bench: %s events of %d B over %s actors (mix %s), %s EVERY=%d MIN=%d MAX=%d, %d workers, %d folds at once\n",
		count(r.Events), r.PayloadBytes, count(r.Actors), r.Mix, r.Strategy, r.Every, r.MinEvents, r.MaxEvents, r.Workers, r.Folds)
	fmt.Fprintf(w, "%s, %s, %d CPUs, %.0f s\n\n", r.Server, r.GoVersion, r.CPUs, r.DurationS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	row("figure", "jetsnap", "baseline (same run)", "ratio", "target")
	row("publish (async, acked)", rateStr(r.PublishRate), "", "", "")
	row(fmt.Sprintf("consume, snapshots every %d", r.Every), rateStr(r.ConsumeRate),
		fmt.Sprintf("bare durable, explicit acks, %s: %s", r.BareFilter, rateStr(r.BareRate)), fmt.Sprintf("%.2f", r.ConsumeRatio), ">= 1.00 "+ok("consume_ratio"))
	if r.ConsumeCPU > 0 {
		row("  CPU per event (process)", fmt.Sprintf("%.1f µs", r.ConsumeCPU), fmt.Sprintf("bare: %.1f µs", r.BareCPU), fmt.Sprintf("%.2f", r.CPURatio), "")
	}
	if r.NoAckRate > 0 {
		row("  bare without acks (AckNone)", "", fmt.Sprintf("%s, %.1f µs", rateStr(r.NoAckRate), r.NoAckCPU), fmt.Sprintf("%.2f", r.NoAckRate/r.BareRate), "")
	}
	if r.BareFilteredRate > 0 {
		row("  bare with jetsnap's filter", "", fmt.Sprintf("%s: %s, %.1f µs", r.Filter, rateStr(r.BareFilteredRate), r.BareFilteredCPU), fmt.Sprintf("%.2f", r.BareFilteredRate/r.BareRate), "")
	}
	if len(r.ConsumeRoundRatios) > 1 {
		ratios := make([]string, len(r.ConsumeRoundRatios))
		for i, x := range r.ConsumeRoundRatios {
			ratios[i] = fmt.Sprintf("%.2f", x)
		}
		row("  each round: pipeline / bare", "", "", strings.Join(ratios, ", "), "")
	}
	if r.WarmConsumeRate > 0 {
		row("  once every actor is tracked", rateStr(r.WarmConsumeRate), fmt.Sprintf("after %s events, %.1f s", count(int(r.WarmUpEvents)), r.WarmUpS), "", "")
	}
	match := ""
	if !r.NativeMatch {
		match = " (outputs differ!)"
	}
	row(fmt.Sprintf("reducer %s, %d-event folds", filepath.Base(r.Script), r.FoldEvents/max(r.FoldCalls, 1)), rateStr(r.ReduceRate),
		"native Go fold: "+rateStr(r.NativeRate)+match, fmt.Sprintf("%.2f", r.ReduceRatio), ">= 0.60 "+ok("reduce_ratio"))
	row("read amplification", fmt.Sprintf("%.4f", r.ReadAmplification),
		fmt.Sprintf("%s read back, %s consumed", count(int(r.StreamReads)), count(int(r.Consumed))), "", "<= 1.05 "+ok("read_amplification"))
	row("  evictions, resyncs, snapshots", fmt.Sprintf("%s, %s, %s", count(int(r.Evictions)), count(int(r.Resyncs)), count(int(r.Snapshots))),
		fmt.Sprintf("%.3f other direct-get replies/event", r.OtherMsgsPerEvt), "", "")
	if r.RestartEvents > 0 {
		row("consume after a restart", rateStr(r.RestartRate),
			fmt.Sprintf("%s-event backlog, a new process: %s read back, %s in a window", count(r.RestartEvents), count(int(r.RestartStreamReads)), count(int(r.RestartWindowReads))),
			fmt.Sprintf("%.2f", r.RestartRatio), "")
	}
	if r.IngestRate > 0 {
		row("max ingest, jetsnap keeping up", rateStr(r.IngestRate), fmt.Sprintf("%s events published at once, until consumed", count(r.IngestEvents)), "", "")
	}
	row("snapshot lag p50 / p99", fmt.Sprintf("%.1f / %.1f ms", r.LagP50Ms, r.LagP99Ms),
		fmt.Sprintf("at %s, %s snapshots, max %.0f ms", rateStr(r.LagRate), count(r.LagSamples), r.LagMaxMs), "", "p99 <= 50 ms "+ok("lag_p99_ms"))
	row("  captures queued, at most", count(int(r.LagMaxQueued)), fmt.Sprintf("%d workers, %d folds at once", r.Workers, r.Folds), "", "")
	row("  folds made ahead, events read back", fmt.Sprintf("%s, %s", count(int(r.LagFoldsAhead)), count(int(r.LagStreamReads))), "while the lag was measured", "", "")
	row("  slowest 1 %: due / queued / capture", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.LagSlowDueMs, r.LagSlowQueuedMs, r.LagSlowCaptureMs),
		fmt.Sprintf("means: publish to due, wait for a worker, capture (%.1f ms of it waiting to fold)", r.LagSlowFoldWaitMs), "", "")
	row(fmt.Sprintf("load %s-event actor p50 / p99", count(r.LongEvents)), fmt.Sprintf("%.2f / %.2f ms", r.LoadP50Ms, r.LoadP99Ms),
		fmt.Sprintf("full replay: %.0f / %.0f ms", r.ReplayP50Ms, r.ReplayP99Ms), fmt.Sprintf("%.0fx", r.LoadSpeedup),
		"p50 <= 2 ms "+ok("load_p50_ms")+", >= 100x "+ok("load_speedup"))
	row("memory per tracked actor", fmt.Sprintf("%.0f B", r.BytesPerActor), "at "+count(r.MemoryActors)+" actors", "", "<= 150 B "+ok("bytes_per_actor"))
	_ = tw.Flush()
}

func rateStr(r float64) string { return count(int(math.Round(r))) + " ev/s" }

// count writes n with thousands separators.
func count(n int) string {
	if n < 0 {
		return "-" + count(-n)
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
