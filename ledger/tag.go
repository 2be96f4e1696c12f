package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ConsumerTag returns the Redis hash tag, braces included, of every key
// that belongs to one consumer: its rate-limit windows, its balances, its
// usage totals and settlement markers. Sharing the tag puts them in one
// Cluster slot, so one script can update them all. A name holding a brace,
// which would end the tag early, is replaced by a digest.
func ConsumerTag(consumer string) string {
	if strings.ContainsAny(consumer, "{}") {
		sum := sha256.Sum256([]byte(consumer))
		return "{c:#" + hex.EncodeToString(sum[:16]) + "}"
	}
	return "{c:" + consumer + "}"
}

func consumerTag(consumer string) string { return strings.Trim(ConsumerTag(consumer), "{}") }
