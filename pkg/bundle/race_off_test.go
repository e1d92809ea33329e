//go:build !race

package bundle

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
