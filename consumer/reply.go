package consumer

import "strings"

// Reply is what the reply subject of a JetStream delivery
// ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>)
// says of it.
type Reply struct {
	Delivered   uint64 // times the server has delivered this message, 1 the first time
	StreamSeq   uint64 // the message's sequence in the stream
	ConsumerSeq uint64 // the delivery's sequence in the consumer
	Timestamp   int64  // when the message was stored, unix ns
	Pending     uint64 // messages of the stream left to deliver after this one: how far behind the consumer is
}

// ParseReply reads a delivery's reply subject, in the short form and in the
// long one (with domain and account hash). It does not allocate; ok is false
// if reply is not a JetStream delivery's.
func ParseReply(reply string) (r Reply, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return Reply{}, false
	}
	skip := 2 // stream, consumer
	if n := strings.Count(rest, ".") + 1; n >= 10 {
		skip = 4 // domain, account hash, stream, consumer
	} else if n != 7 {
		return Reply{}, false
	}
	var nums [5]uint64
	for i := 0; i < skip+5; i++ {
		var tok string
		tok, rest, _ = strings.Cut(rest, ".")
		if i >= skip {
			n, good := parseUint(tok)
			if !good {
				return Reply{}, false
			}
			nums[i-skip] = n
		}
	}
	return Reply{Delivered: nums[0], StreamSeq: nums[1], ConsumerSeq: nums[2], Timestamp: int64(nums[3]), Pending: nums[4]}, true
}

func parseUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
