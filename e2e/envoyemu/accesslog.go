package envoyemu

import (
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// finish ends the request as Envoy's filter destruction does (the ext_proc
// stream is closed: half-close, then reset) and emits the access log entry.
func (x *exchange) finish() {
	x.closeStream()
	x.rec.Duration = x.p.opts.Now().Sub(x.rec.Start)
	if x.rec.ResponseCodeDetails == "" {
		x.rec.ResponseCodeDetails = "-"
	}
	if f := x.p.opts.AccessLogFormat; f != nil {
		x.rec.AccessLog = renderAccessLog(f, x.rec)
		x.p.opts.Logger.Info("access", "log", x.rec.AccessLog)
	}
	if cb := x.p.opts.OnComplete; cb != nil {
		cb(x.rec)
	}
}

var operator = regexp.MustCompile(`%[A-Z_]+(\([^)]*\))?%`)

// renderAccessLog renders a json_format access log the way Envoy's JSON
// formatter does: a value that is exactly one operator keeps its type
// (numbers stay numbers), a missing value is null, and operators inside
// longer strings are substituted as text ("-" when missing).
func renderAccessLog(format *structpb.Struct, rec Record) map[string]any {
	out := map[string]any{}
	for k, v := range format.GetFields() {
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			out[k] = v.AsInterface()
			continue
		}
		if loc := operator.FindStringIndex(s.StringValue); loc != nil && loc[0] == 0 && loc[1] == len(s.StringValue) {
			out[k] = evalOperator(s.StringValue, rec)
			continue
		}
		out[k] = operator.ReplaceAllStringFunc(s.StringValue, func(op string) string {
			v := evalOperator(op, rec)
			if v == nil {
				return "-"
			}
			return toText(v)
		})
	}
	return out
}

func toText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	val, err := structpb.NewValue(v)
	if err != nil {
		return "-"
	}
	b, err := val.MarshalJSON()
	if err != nil {
		return "-"
	}
	return string(b)
}

// evalOperator supports the command operators tollgate's access log uses.
func evalOperator(op string, rec Record) any {
	name, arg, _ := strings.Cut(strings.Trim(op, "%"), "(")
	arg = strings.TrimSuffix(arg, ")")
	switch name {
	case "START_TIME":
		return rec.Start.UTC().Format("2006-01-02T15:04:05.000Z")
	case "DURATION":
		return float64(rec.Duration / time.Millisecond)
	case "RESPONSE_CODE":
		return float64(rec.ResponseCode)
	case "RESPONSE_CODE_DETAILS":
		return rec.ResponseCodeDetails
	case "RESPONSE_FLAGS":
		return rec.ResponseFlags
	case "ROUTE_NAME":
		return nilIfEmpty(rec.RouteName)
	case "UPSTREAM_HOST":
		return nilIfEmpty(rec.upstreamHost)
	case "REQ":
		for _, alt := range strings.Split(arg, "?") {
			if v, ok := rec.requestHeaders.get(strings.ToLower(alt)); ok {
				return v
			}
		}
		return nil
	case "DYNAMIC_METADATA":
		ns, key, _ := strings.Cut(arg, ":")
		s, ok := rec.DynamicMetadata[ns]
		if !ok {
			return nil
		}
		if key == "" {
			return s.AsMap()
		}
		v, ok := s.GetFields()[key]
		if !ok {
			return nil
		}
		return v.AsInterface()
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
