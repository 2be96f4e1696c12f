//go:build race

package tokens

// raceEnabled trims the reference comparisons that only repeat the same code
// on more data: the race detector slows the reference tenfold.
const raceEnabled = true
