//go:build !race

package snapshotter_test

const raceDetector = false
