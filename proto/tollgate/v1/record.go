package tollgatev1

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
)

// jsonOptions renders records with the .proto field names (snake_case), the
// names billing pipelines see in the Redis Stream.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true}

// MarshalRecordJSON renders r as protobuf JSON, the form a usage event takes
// in the Redis Stream. Zero fields are left out, as protobuf JSON does; 64-bit
// integers are JSON strings, as the protobuf JSON mapping requires.
func MarshalRecordJSON(r *UsageRecord) ([]byte, error) {
	b, err := jsonOptions.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("cannot render usage record: %w", err)
	}
	return b, nil
}

// UnmarshalRecordJSON reads a usage event written by MarshalRecordJSON (or
// by any protobuf JSON writer), ignoring fields this version does not know.
func UnmarshalRecordJSON(b []byte) (*UsageRecord, error) {
	r := new(UsageRecord)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("cannot read usage record: %w", err)
	}
	return r, nil
}
