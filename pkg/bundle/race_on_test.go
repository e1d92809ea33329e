//go:build race

package bundle

// raceEnabled reports whether the race detector is on: it changes what is
// allocated (sync.Pool drops items at random), so allocation bounds do not
// hold under it.
const raceEnabled = true
