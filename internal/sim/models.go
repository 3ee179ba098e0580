package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// model is the physical behaviour of one device. A model is used by one
// goroutine at a time. Given the same random source and the same sequence of
// calls, it produces the same readings.
type model interface {
	// advance evolves the device's state up to simulated time now. Calls
	// with a time before the last one are ignored.
	advance(now time.Time)
	// reading samples one stream at the last advanced time. Event streams
	// (a door opening, a motion) change state when sampled; nil means
	// nothing happened this time and nothing is sent.
	reading(stream string) map[string]any
}

// learner is a model that learns from its own streams (the manifest
// marks them candor:machineLearning) or acts on what it learned by
// itself (candor:automatedDecisions). The device tells it the hub's
// switches before each step: learn false means stop learning and forget
// what was learned; decide false means keep to the plain program.
type learner interface {
	setLearning(stream string, learn, decide bool)
}

// stepper splits the simulated time between two advance calls into steps of
// at most max, so that models can integrate simple dynamics stably even
// across long gaps (a device that was offline for a day).
type stepper struct {
	last time.Time
}

func (s *stepper) steps(now time.Time, maxStep time.Duration, f func(t time.Time, dt float64)) {
	if !now.After(s.last) {
		return
	}
	for s.last.Before(now) {
		d := now.Sub(s.last)
		if d > maxStep {
			d = maxStep
		}
		s.last = s.last.Add(d)
		f(s.last, d.Seconds())
	}
}

// hourOf is the time of day in hours, 0 ≤ h < 24, in the time's location.
func hourOf(t time.Time) float64 {
	h, m, s := t.Clock()
	return float64(h) + float64(m)/60 + float64(s)/3600
}

// bump is a bell curve of height 1 centred on hour mu, width sigma hours,
// wrapping around midnight.
func bump(h, mu, sigma float64) float64 {
	d := math.Abs(h - mu)
	if d > 12 {
		d = 24 - d
	}
	return math.Exp(-d * d / (2 * sigma * sigma))
}

// daily is a sine wave over the day with its peak at hour peak.
func daily(h, peak float64) float64 {
	return math.Cos(2 * math.Pi * (h - peak) / 24)
}

func clamp(x, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, x))
}

func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// chance is true with the probability that an event with the given mean
// time between occurrences happens within dt seconds.
func chance(r *rand.Rand, dt, meanSeconds float64) bool {
	return r.Float64() < 1-math.Exp(-dt/meanSeconds)
}

// ---- thermostat ----

type thermostat struct {
	r *rand.Rand
	stepper
	celsius, humidity float64
	comfort, eco      float64 // day and night setpoints of the weekly program
	scheduled         float64 // what the program last asked for
	setpoint          float64
	heating           bool
	// The thermostat learns how fast the room warms up (°C an hour
	// while heating, from its temperature stream) so that the heating
	// starts early enough to reach the comfort temperature at 06:30.
	// warmRate is 0 until it learned something, and again after the
	// hub says "learn": false on the temperature stream; preheating also
	// needs "decide" on that stream, as it acts by itself.
	learn, decide bool
	warmRate      float64
	prevCelsius   float64
	preheating    bool
}

func newThermostat(r *rand.Rand, now time.Time) model {
	m := &thermostat{
		r:        r,
		stepper:  stepper{last: now},
		comfort:  20 + 0.5*float64(r.IntN(4)), // 20 … 21.5
		eco:      17 + 0.5*float64(r.IntN(3)), // 17 … 18
		humidity: 45 + 10*r.Float64(),
		learn:    true,
		decide:   true,
	}
	m.scheduled = m.program(hourOf(now))
	m.setpoint = m.scheduled
	m.celsius = m.setpoint - 1 + 2*r.Float64()
	m.heating = m.celsius < m.setpoint
	m.prevCelsius = m.celsius
	return m
}

// setLearning follows the hub's switches for the temperature stream,
// the one the thermostat learns from.
func (m *thermostat) setLearning(stream string, learn, decide bool) {
	if stream != "temperature" {
		return
	}
	m.learn, m.decide = learn, decide
	if !learn {
		m.warmRate = 0 // forget what was learned
	}
}

// comfortStart is the hour the program's comfort period begins.
const comfortStart = 6.5

// preheat reports whether the thermostat, from what it learned, starts
// heating for the comfort period before the program does: when the
// room, warming at the learned rate, would only just reach comfort by
// 06:30.
func (m *thermostat) preheat(h float64) bool {
	if !m.learn || !m.decide || m.warmRate <= 0 || h >= comfortStart || h < comfortStart-3 {
		return false
	}
	need := (m.comfort - m.celsius) / m.warmRate // hours of heating needed
	return need >= comfortStart-h
}

// program is the setpoint the thermostat's schedule asks for at hour h:
// comfort from 06:30 to 22:30, eco at night.
func (m *thermostat) program(h float64) float64 {
	if h >= 6.5 && h < 22.5 {
		return m.comfort
	}
	return m.eco
}

func (m *thermostat) advance(now time.Time) {
	m.steps(now, 30*time.Second, func(t time.Time, dt float64) {
		h := hourOf(t)
		// Now and then someone turns the dial, about every two days; the
		// new comfort temperature holds until the next turn.
		if chance(m.r, dt, 48*3600) {
			m.comfort = clamp(m.comfort+0.5*float64(m.r.IntN(5)-2), 19, 23)
		}
		if p := m.program(h); p != m.scheduled {
			m.scheduled, m.setpoint = p, p // the schedule switches
		}
		if pre := m.preheat(h); pre != m.preheating {
			m.preheating = pre
			if pre {
				m.setpoint = m.comfort
			} else if h < comfortStart {
				m.setpoint = m.scheduled // told to stop: back to the plain program
			}
		}

		// Without heating the room drifts towards a temperature that
		// follows the day outside: coolest before dawn, warmest mid-afternoon.
		ambient := 16.5 + 2.5*daily(h, 15)
		if m.celsius < m.setpoint-0.4 {
			m.heating = true
		} else if m.celsius > m.setpoint+0.4 {
			m.heating = false
		}
		rate := (ambient - m.celsius) / (3 * 3600) // heat loss, 3 h time constant
		if m.heating {
			rate += 2.5 / 3600 // radiators add 2.5 °C an hour
		}
		m.celsius += rate*dt + 0.02*math.Sqrt(dt/5)*m.r.NormFloat64()
		m.celsius = clamp(m.celsius, 15, 28)
		m.learnWarming(dt)

		// Humidity is higher at night and when cooking, lower with the heating on.
		target := 50 + 6*daily(h, 5) + 8*bump(h, 19, 1)
		if m.heating {
			target -= 6
		}
		m.humidity += (target-m.humidity)*dt/7200 + 0.1*math.Sqrt(dt/5)*m.r.NormFloat64()
		m.humidity = clamp(m.humidity, 30, 70)
	})
}

// learnWarming updates the learned warm-up rate from the last step, while
// the heating is on and learning is allowed: a slow moving average (about
// an hour of heating), so the noise of one step counts for little.
func (m *thermostat) learnWarming(dt float64) {
	prev := m.prevCelsius
	m.prevCelsius = m.celsius
	if !m.learn || !m.heating || dt <= 0 {
		return
	}
	observed := (m.celsius - prev) / dt * 3600
	if m.warmRate == 0 {
		m.warmRate = 2.5 // a first guess: radiators are sized for about this
	}
	w := dt / 3600
	m.warmRate = clamp(m.warmRate+(observed-m.warmRate)*w, 0.1, 10)
}

func (m *thermostat) reading(stream string) map[string]any {
	switch stream {
	case "temperature":
		return map[string]any{"celsius": round(m.celsius, 1), "humidity_percent": round(m.humidity, 1)}
	case "setpoint":
		return map[string]any{"celsius": m.setpoint}
	case "heating":
		return map[string]any{"on": m.heating}
	}
	return nil
}

// ---- smart meter ----

type smartMeter struct {
	r *rand.Rand
	stepper
	watts, kwh   float64
	spikeW       float64 // an appliance running: kettle, oven, washing machine
	spikeSeconds float64 // how long it keeps running
}

func newSmartMeter(r *rand.Rand, now time.Time) model {
	m := &smartMeter{r: r, stepper: stepper{last: now}, kwh: 1000 + 20000*r.Float64()}
	m.watts = clamp(m.load(hourOf(now)), 80, 4000)
	return m
}

// load is the household's typical draw at hour h: a base load of fridge and
// standby devices, a breakfast peak, a lunch bump and a large dinner peak.
func (m *smartMeter) load(h float64) float64 {
	return 140 + 600*bump(h, 7.5, 1) + 300*bump(h, 12.5, 1.5) + 1400*bump(h, 19.5, 1.7)
}

func (m *smartMeter) advance(now time.Time) {
	m.steps(now, 5*time.Second, func(t time.Time, dt float64) {
		h := hourOf(t)
		if m.spikeSeconds > 0 {
			m.spikeSeconds -= dt
		} else if chance(m.r, dt, 1800/(0.2+2*bump(h, 13, 5))) {
			m.spikeW = 800 + 2000*m.r.Float64()
			m.spikeSeconds = 60 + 840*m.r.Float64()
		}
		w := m.load(h) * (1 + 0.05*m.r.NormFloat64())
		if m.spikeSeconds > 0 {
			w += m.spikeW
		}
		m.watts = clamp(w, 80, 4000)
		m.kwh += m.watts * dt / 3.6e6
	})
}

func (m *smartMeter) reading(stream string) map[string]any {
	switch stream {
	case "power":
		return map[string]any{"watts": round(m.watts, 1)}
	case "energy":
		return map[string]any{"kwh_total": round(m.kwh, 3)}
	}
	return nil
}

// ---- door sensor ----

type doorSensor struct {
	r *rand.Rand
	stepper
	open    bool
	battery float64
}

func newDoorSensor(r *rand.Rand, now time.Time) model {
	return &doorSensor{r: r, stepper: stepper{last: now}, battery: 70 + 30*r.Float64()}
}

func (m *doorSensor) advance(now time.Time) {
	m.steps(now, time.Hour, func(_ time.Time, dt float64) {
		m.battery = math.Max(0, m.battery-dt/86400*2) // about 2 % a day
	})
}

func (m *doorSensor) reading(stream string) map[string]any {
	switch stream {
	case "contact":
		m.open = !m.open
		m.battery = math.Max(0, m.battery-0.002) // the radio costs a little
		return map[string]any{"open": m.open}
	case "battery":
		return map[string]any{"percent": math.Floor(m.battery*10) / 10}
	}
	return nil
}

// ---- motion camera ----

type motionCamera struct {
	r          *rand.Rand
	now        time.Time
	lastMotion time.Time
}

func newMotionCamera(r *rand.Rand, now time.Time) model {
	return &motionCamera{r: r, now: now}
}

func (m *motionCamera) advance(now time.Time) {
	if now.After(m.now) {
		m.now = now
	}
}

func (m *motionCamera) reading(stream string) map[string]any {
	switch stream {
	case "motion":
		h := hourOf(m.now)
		// Most nights are quiet: only some chances of motion become events.
		if m.r.Float64() > 0.15+0.85*(1-bump(h, 3, 2.5)) {
			return nil
		}
		m.lastMotion = m.now
		// Cars come and go morning and evening, the garden is busy by day,
		// the hall in the evening.
		weights := []float64{
			0.3 + bump(h, 20, 2),                 // hall
			0.2 + 1.2*bump(h, 14, 3),             // garden
			0.2 + bump(h, 8, 1) + bump(h, 18, 1), // driveway
		}
		zone := motionZones[pick(m.r, weights)]
		return map[string]any{"detected": true, "zone": zone, "confidence": round(0.4+0.59*m.r.Float64(), 2)}
	case "status":
		// Recording runs for a minute after the last motion.
		rec := !m.lastMotion.IsZero() && m.now.Sub(m.lastMotion) < time.Minute
		return map[string]any{"recording": rec}
	}
	return nil
}

// pick draws an index with probability proportional to its weight.
func pick(r *rand.Rand, weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	x := r.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// ---- wearable ----

type wearable struct {
	r *rand.Rand
	stepper
	activity       float64 // 0 asleep or still … 1 running
	bpm            float64
	day            int // day of the year the step count belongs to
	stepCount      int
	stepFraction   float64
	workoutSeconds float64
}

// asleep is when the wearer sleeps: 23:00 to 07:00.
func asleep(h float64) bool { return h >= 23 || h < 7 }

func newWearable(r *rand.Rand, now time.Time) model {
	m := &wearable{r: r, stepper: stepper{last: now}, day: now.YearDay(), bpm: 70}
	h := hourOf(now)
	if !asleep(h) {
		// Steps already walked today.
		m.stepCount = int((h - 7) * (400 + 400*r.Float64()))
	}
	return m
}

func (m *wearable) advance(now time.Time) {
	m.steps(now, 15*time.Second, func(t time.Time, dt float64) {
		if t.YearDay() != m.day {
			m.day, m.stepCount, m.stepFraction = t.YearDay(), 0, 0
		}
		h := hourOf(t)
		target := 0.02
		if !asleep(h) {
			target = 0.12 + 0.15*bump(h, 8, 0.7) + 0.12*bump(h, 12.5, 0.5) + 0.15*bump(h, 17.5, 0.8)
			if m.workoutSeconds > 0 {
				m.workoutSeconds -= dt
				target = 0.8
			} else if h > 7.5 && h < 21 && chance(m.r, dt, 8*3600) {
				m.workoutSeconds = (20 + 40*m.r.Float64()) * 60 // a run or a brisk walk
			}
		} else {
			m.workoutSeconds = 0
		}
		m.activity += (target-m.activity)*math.Min(1, dt/120) + 0.03*math.Sqrt(dt/15)*m.r.NormFloat64()
		m.activity = clamp(m.activity, 0, 1)

		rest := 62.0
		if asleep(h) {
			rest = 54
		}
		m.bpm += (rest+100*m.activity-m.bpm)*math.Min(1, dt/45) + 1.5*math.Sqrt(dt/15)*m.r.NormFloat64()
		m.bpm = clamp(m.bpm, 50, 160)

		if !asleep(h) && m.activity > 0.1 {
			m.stepFraction += dt / 60 * 120 * (m.activity - 0.1) / 0.9 // up to 120 steps a minute
			whole := math.Floor(m.stepFraction)
			m.stepFraction -= whole
			m.stepCount = min(m.stepCount+int(whole), 100_000)
		}
	})
}

func (m *wearable) reading(stream string) map[string]any {
	switch stream {
	case "heart_rate":
		return map[string]any{"bpm": int(math.Round(m.bpm))}
	case "steps":
		return map[string]any{"count": m.stepCount}
	case "sleep":
		return map[string]any{"stage": m.stage()}
	}
	return nil
}

// stage follows 90-minute sleep cycles from 23:00, with more deep sleep
// early in the night, more REM towards morning, and brief awakenings.
func (m *wearable) stage() string {
	h := hourOf(m.last)
	if !asleep(h) {
		return "awake"
	}
	if m.r.Float64() < 0.03 {
		return "awake"
	}
	since := math.Mod(h-23+24, 24) * 60 // minutes asleep
	cycle := int(since / 90)
	pos := math.Mod(since, 90)
	deep := 35 - 6*float64(cycle) // deep sleep shrinks through the night
	switch {
	case pos < 15:
		return "light"
	case pos < 15+deep:
		return "deep"
	case pos < 70-float64(cycle)*3:
		return "light"
	default:
		return "rem"
	}
}
