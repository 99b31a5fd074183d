//go:build race

package scripting

import "testing"

const raceEnabled = true

// limitMemory does nothing under the race detector, which maps far more
// address space than any limit we would set.
func limitMemory(t *testing.T) {}
