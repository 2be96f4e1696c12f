package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate-ai/tollgate/limiter"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// decodeStrict decodes one JSON object into v: unknown fields and
// anything after the object are errors. An empty body is allowed only
// when emptyOK.
func decodeStrict(data []byte, v any, emptyOK bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return nil
		}
		return fail(ErrInvalid, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(ErrInvalid, "bad JSON body: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail(ErrInvalid, "bad JSON body: more than one JSON value")
	}
	return nil
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			return fmt.Sprintf("%s: must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "uint", "uint64", "float64":
		return "a number"
	}
	return "a " + goKind
}

func decodeTier(data []byte) (TierInfo, error) {
	var t TierInfo
	err := decodeStrict(data, &t, false)
	return t, err
}

func decodeConsumer(data []byte) (ConsumerInfo, error) {
	var c ConsumerInfo
	err := decodeStrict(data, &c, false)
	return c, err
}

// decodeConsumerPatch tells absent fields (unchanged) from null ones
// (cleared).
func decodeConsumerPatch(data []byte, name string) (ConsumerPatch, error) {
	var p ConsumerPatch
	var fields map[string]json.RawMessage
	if err := decodeStrict(data, &fields, false); err != nil {
		return p, err
	}
	if fields == nil {
		return p, fail(ErrInvalid, "the body must be a JSON object")
	}
	null := func(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
	for k, v := range fields {
		var err error
		switch k {
		case "tier":
			var s string
			if !null(v) {
				err = decodeStrict(v, &s, false)
			}
			p.Tier = &s
		case "models":
			var m []string
			if !null(v) {
				err = decodeStrict(v, &m, false)
			}
			p.Models = &m
		case "limits":
			var l limiter.Limits
			if !null(v) {
				err = decodeStrict(v, &l, false)
			}
			p.Limits = &l
		case "quota":
			p.QuotaSet = true
			if !null(v) {
				p.Quota = &Quota{}
				err = decodeStrict(v, p.Quota, false)
			}
		case "disabled":
			var b bool
			if err = decodeStrict(v, &b, false); err == nil {
				p.Disabled = &b
			}
		case "name":
			var s string
			if err = decodeStrict(v, &s, false); err == nil && s != name {
				err = fail(ErrInvalid, "consumers cannot be renamed")
			}
		case "source", "keys":
			// Read-only fields of an answer sent back.
		default:
			err = fail(ErrInvalid, "unknown field %q; a consumer can change tier, models, limits, quota and disabled", k)
		}
		if err != nil {
			return p, fail(ErrInvalid, "%s: %v", k, err)
		}
	}
	return p, nil
}

func decodeKeyRequest(data []byte) (KeyRequest, error) {
	var r KeyRequest
	err := decodeStrict(data, &r, true)
	return r, err
}

func decodeRotateRequest(data []byte) (RotateRequest, error) {
	var r RotateRequest
	err := decodeStrict(data, &r, true)
	return r, err
}

func decodeProvider(data []byte) (ProviderInput, error) {
	var p ProviderInput
	err := decodeStrict(data, &p, false)
	return p, err
}

func decodeProviderKey(data []byte) (string, error) {
	var body struct {
		Key *string `json:"key"`
	}
	if err := decodeStrict(data, &body, false); err != nil {
		return "", err
	}
	if body.Key == nil {
		return "", fail(ErrInvalid, `the body must be {"key": "..."}`)
	}
	return *body.Key, nil
}
