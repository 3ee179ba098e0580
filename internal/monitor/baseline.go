package monitor

import "math"

// baseline learns what one metric usually is for one device and stream: an
// exponentially weighted mean and an exponentially weighted mean absolute
// deviation around it. Both are robust enough for alarms that also need
// several windows in a row, fit in 12 bytes, and need no history, which is
// what bounds the memory per device.
type baseline struct {
	mean, dev float32
	n         uint32 // windows learned (saturates)
}

// learn folds one window's value in. The first value seeds the mean, so
// the warm-up starts from what the device really does.
func (b *baseline) learn(x, alpha float64) {
	if b.n == 0 {
		b.mean, b.dev = float32(x), 0
	} else {
		m := float64(b.mean)
		d := math.Abs(x - m)
		b.mean = float32(m + alpha*(x-m))
		b.dev = float32(float64(b.dev) + alpha*(d-float64(b.dev)))
	}
	if b.n < math.MaxUint32 {
		b.n++
	}
}

// band is how far from the mean a value may be before it counts as
// unusual: k deviations, but never less than a share of the mean or an
// absolute floor, so a device that was perfectly steady during warm-up
// is not flagged for the first bit of jitter.
func (b *baseline) band(k, rel, abs float64) float64 {
	return max(k*float64(b.dev), rel*float64(b.mean), abs)
}

// above reports whether x is unusually high.
func (b *baseline) above(x, k, rel, abs float64) bool {
	return x > float64(b.mean)+b.band(k, rel, abs)
}

// below reports whether x is unusually low.
func (b *baseline) below(x, k, rel, abs float64) bool {
	return x < float64(b.mean)-b.band(k, rel, abs)
}
