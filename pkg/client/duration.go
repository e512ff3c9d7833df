package client

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Duration is a time.Duration that reads and writes JSON the way Cairn
// does: it writes "1m30s" and reads either such a string or a number of
// seconds (90, 0.5).
//
// The SDK's structs expose plain time.Duration fields; Duration is what
// they use on the wire, exported for applications that mirror the API
// shapes themselves.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string ("90s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "90s", "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	if string(b) == "null" {
		return nil // like the standard types: null leaves the value alone
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\" or a number of seconds, not %s", b)
	}
	v, err := secondsDuration(f)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses "30s", "1m30s" or a plain number of seconds ("90",
// "0.5"), the forms the API accepts.
func ParseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsDuration(f)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a duration such as \"30s\" or a number of seconds", s)
	}
	return v, nil
}

// maxSeconds keeps a number of seconds within time.Duration's range.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

func secondsDuration(f float64) (time.Duration, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > maxSeconds {
		return 0, fmt.Errorf("duration %v seconds is out of range", f)
	}
	return time.Duration(f * float64(time.Second)), nil
}
