//go:build race

package announce

const raceEnabled = true
