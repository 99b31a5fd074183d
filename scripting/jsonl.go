package scripting

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// JSONLEpoch is the time of a JSONL event that gives none.
var JSONLEpoch = time.Unix(0, 0).UTC()

// jsonlEvent is one line of the JSONL format of `jetsnap reduce`.
type jsonlEvent struct {
	Actor   *string                    `json:"actor"`
	Type    *string                    `json:"type"`
	Data    json.RawMessage            `json:"data"`
	Seq     *uint64                    `json:"seq"`
	Version *uint64                    `json:"version"`
	Time    *string                    `json:"time"`
	Subject *string                    `json:"subject"`
	Headers map[string]json.RawMessage `json:"headers"`
}

// ReadJSONL reads events in the JSONL format of `jetsnap reduce`: one JSON
// object per line, shaped like the event reducers see:
//
//	{"type": "Deposited", "data": {"amount": 5}, "version": 1, "seq": 1,
//	 "time": "2024-01-01T00:00:00Z", "subject": "events.account.42",
//	 "actor": "account.42", "headers": {"Trace": "x", "Multi": ["a", "b"]}}
//
// type and data are required: data is the payload as any JSON value (a
// string stands for a payload that is not JSON). Blank lines are skipped.
// Defaults: actor the given actor, subject "events.<actor>", version and
// seq the event's position (1-based), time JSONLEpoch. Unknown fields are
// errors. Errors name the line: "line 3: ...".
func ReadJSONL(r io.Reader, actor string) ([]Event, error) {
	br := bufio.NewReader(r)
	var events []Event
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			ev, derr := decodeJSONLine(b, actor, uint64(len(events)+1))
			if derr != nil {
				return nil, fmt.Errorf("line %d: %w", line, derr)
			}
			events = append(events, ev)
		}
		if err != nil {
			return events, nil
		}
	}
}

func decodeJSONLine(b []byte, actor string, n uint64) (Event, error) {
	var j jsonlEvent
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return Event{}, fmt.Errorf("not a JSON event object: %w", err)
	}
	if d.More() {
		return Event{}, errors.New("more than one JSON value on the line")
	}
	if j.Type == nil {
		return Event{}, errors.New(`missing "type"`)
	}
	if j.Data == nil {
		return Event{}, errors.New(`missing "data" (use "data": null for an empty payload)`)
	}
	ev := Event{Actor: actor, Type: *j.Type, Data: []byte(j.Data), Seq: n, Version: n, Time: JSONLEpoch}
	if j.Actor != nil {
		ev.Actor = *j.Actor
	}
	ev.Subject = "events." + ev.Actor
	if j.Subject != nil {
		ev.Subject = *j.Subject
	}
	if j.Seq != nil {
		ev.Seq = *j.Seq
	}
	if j.Version != nil {
		ev.Version = *j.Version
	}
	if j.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *j.Time)
		if err != nil {
			return Event{}, fmt.Errorf(`"time": %w`, err)
		}
		ev.Time = t
	}
	if len(j.Headers) > 0 {
		ev.Headers = make(map[string][]string, len(j.Headers))
		for k, raw := range j.Headers {
			var one string
			if err := json.Unmarshal(raw, &one); err == nil {
				ev.Headers[k] = []string{one}
				continue
			}
			var many []string
			if err := json.Unmarshal(raw, &many); err != nil {
				return Event{}, fmt.Errorf(`"headers": %q must be a string or an array of strings`, k)
			}
			ev.Headers[k] = many
		}
	}
	return ev, nil
}
