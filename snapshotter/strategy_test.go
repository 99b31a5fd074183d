package snapshotter

import (
	"fmt"
	"testing"
	"time"
)

func TestStrategyDue(t *testing.T) {
	hybrid := Strategy{Kind: KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500}
	typed := hybrid
	typed.OnTypes = []string{"Closed"}
	aged := hybrid
	aged.MaxAge = time.Minute
	cases := []struct {
		name string
		st   Strategy
		v, s uint64
		typ  string
		aged bool
		want bool
	}{
		{"interval below", Strategy{Kind: KindInterval, Every: 100}, 199, 100, "", false, false},
		{"interval at", Strategy{Kind: KindInterval, Every: 100}, 200, 100, "", false, true},
		{"interval off grid", Strategy{Kind: KindInterval, Every: 100}, 157, 57, "", false, true},
		{"version crosses", Strategy{Kind: KindVersion, Every: 100}, 200, 157, "", false, true},
		{"version same bucket", Strategy{Kind: KindVersion, Every: 100}, 199, 157, "", false, false},
		{"hybrid boundary", hybrid, 100, 0, "", false, true},
		{"hybrid before boundary", hybrid, 99, 0, "", false, false},
		{"hybrid boundary under MIN", hybrid, 200, 195, "", false, false},
		{"hybrid MIN reached past boundary", hybrid, 205, 195, "", false, true},
		{"hybrid MIN minus one past boundary", hybrid, 204, 195, "", false, false},
		{"hybrid MAX", Strategy{Kind: KindHybrid, Every: 1000, MinEvents: 10, MaxEvents: 500}, 500, 0, "", false, true},
		{"hybrid MAX minus one", Strategy{Kind: KindHybrid, Every: 1000, MinEvents: 10, MaxEvents: 500}, 499, 0, "", false, false},
		{"hybrid MAX beats MIN", Strategy{Kind: KindHybrid, Every: 1000, MinEvents: 5, MaxEvents: 5}, 5, 0, "", false, true},
		{"on type", typed, 15, 0, "Closed", false, true},
		{"on type under MIN", typed, 9, 0, "Closed", false, false},
		{"other type", typed, 15, 0, "Opened", false, false},
		{"types ignored without OnTypes", hybrid, 15, 0, "Closed", false, false},
		{"aged", aged, 15, 0, "", true, true},
		{"aged under MIN", aged, 9, 0, "", true, false},
		{"aged without MaxAge", hybrid, 15, 0, "", true, false},
		{"no new events", hybrid, 100, 100, "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.st.Due(c.v, c.s, c.typ, c.aged); got != c.want {
				t.Fatalf("Due(v=%d, s=%d, %q, aged=%v) = %v, want %v", c.v, c.s, c.typ, c.aged, got, c.want)
			}
		})
	}
}

// TestStrategyNext checks that Next agrees with walking Due event by event.
func TestStrategyNext(t *testing.T) {
	for _, st := range []Strategy{
		{Kind: KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500},
		{Kind: KindHybrid, Every: 1000, MinEvents: 10, MaxEvents: 300},
		{Kind: KindHybrid, Every: 7, MinEvents: 5, MaxEvents: 9},
		{Kind: KindInterval, Every: 13},
		{Kind: KindVersion, Every: 13},
	} {
		t.Run(fmt.Sprintf("%+v", st), func(t *testing.T) {
			var s uint64
			for v := uint64(1); v <= 5000; v++ {
				if st.Due(v, s, "", false) {
					if next := st.Next(s); next != v {
						t.Fatalf("Next(%d) = %d, walking Due gives %d", s, next, v)
					}
					s = v
				}
			}
		})
	}
}

func TestStrategyExample(t *testing.T) {
	// DESIGN.md: EVERY=100, MIN=10, MAX=500: 250 events give snapshots at 100 and 200.
	st := Strategy{Kind: KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500}
	var got []uint64
	var s uint64
	for v := uint64(1); v <= 250; v++ {
		if st.Due(v, s, "", false) {
			got, s = append(got, v), v
		}
	}
	if fmt.Sprint(got) != "[100 200]" {
		t.Fatalf("placements = %v, want [100 200]", got)
	}
}

func TestStrategyValidate(t *testing.T) {
	bad := []Strategy{
		{Kind: "sometimes", Every: 1},
		{Kind: KindHybrid, Every: 0, MinEvents: 1, MaxEvents: 1},
		{Kind: KindHybrid, Every: 10, MinEvents: 20, MaxEvents: 10},
		{Kind: KindHybrid, Every: 10, MinEvents: 0, MaxEvents: 10},
	}
	for _, st := range bad {
		if err := st.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", st)
		}
	}
	if err := (Strategy{Kind: KindHybrid, Every: 100, MinEvents: 10, MaxEvents: 500}).Validate(); err != nil {
		t.Fatal(err)
	}
}
