package bench

import "strconv"

// payloadBody is the fixed part of a benchmark reading, shaped like what
// a small sensor sends.
const payloadBody = `,"celsius":21.5,"humidity":48.2,"battery_v":3.71,"pad":"`

// MinPayloadBytes is the size of the smallest reading AppendPayload makes.
const MinPayloadBytes = len(`{"t":1700000000000000000,"seq":0`) + len(payloadBody) + len(`"}`)

// AppendPayload appends a JSON object reading of exactly size bytes (or
// MinPayloadBytes-ish, if size is smaller): the send time in Unix
// nanoseconds as "t", a sequence number, sensor-like fields and padding.
// The send time lets the stored copy tell how long the reading took to
// reach the store.
func AppendPayload(dst []byte, sentNanos int64, seq uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, payloadBody...)
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// SentNanos extracts the send time from a reading made by AppendPayload.
func SentNanos(payload []byte) (int64, bool) {
	const prefix = `{"t":`
	if len(payload) < len(prefix) || string(payload[:len(prefix)]) != prefix {
		return 0, false
	}
	var n int64
	digits := 0
	for _, c := range payload[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
		if digits > 19 {
			return 0, false
		}
	}
	return n, digits > 0
}
