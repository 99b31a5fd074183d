package consumer

import "testing"

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		reply                          string
		delivered, sseq, dseq, pending uint64
		ts                             int64
		ok                             bool
	}{
		{"$JS.ACK.EVENTS.jetsnap.1.100.7.1700000000000000000.5", 1, 100, 7, 5, 1700000000000000000, true},
		{"$JS.ACK._.abc.EVENTS.jetsnap.2.100.7.1700000000000000000.6.xyz", 2, 100, 7, 6, 1700000000000000000, true},
		{"$JS.ACK.EVENTS.jetsnap.1.100", 0, 0, 0, 0, 0, false},
		{"_INBOX.abc", 0, 0, 0, 0, 0, false},
		{"$JS.ACK.EVENTS.jetsnap.x.100.7.1.5", 0, 0, 0, 0, 0, false},
		{"$JS.ACK.EVENTS.jetsnap.1.100.7.1.x", 0, 0, 0, 0, 0, false},
	} {
		r, ok := ParseReply(c.reply)
		if r.Delivered != c.delivered || r.StreamSeq != c.sseq || r.ConsumerSeq != c.dseq || r.Pending != c.pending || r.Timestamp != c.ts || ok != c.ok {
			t.Errorf("ParseReply(%q) = %+v %v", c.reply, r, ok)
		}
	}
}
