package alerts

import (
	"fmt"

	"github.com/tollgate-ai/tollgate/quota"
)

// PeriodID names the quota period info describes, as notifications show
// it: "2026-11-05" (day), "2026-W45" (ISO week), "2026-11" (month), or ""
// for a balance without a period. info comes from [quota.Policy.Describe];
// its PeriodStart is in the allotment's time zone, so the name is the
// period's local date.
func PeriodID(info quota.Info) string {
	if info.PeriodStart == nil {
		return ""
	}
	s := *info.PeriodStart
	switch info.Period {
	case quota.Day:
		return s.Format("2006-01-02")
	case quota.Week:
		y, w := s.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	case quota.Month:
		return s.Format("2006-01")
	default:
		return ""
	}
}
