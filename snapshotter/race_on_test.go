//go:build race

package snapshotter_test

// raceDetector: the race detector slows the in-process nats-server about
// tenfold, so the heaviest workloads run smaller under -race. `make test`
// also runs them at full size without it.
const raceDetector = true
