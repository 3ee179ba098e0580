package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// point is one numeric value of a stream field at a time.
type point struct {
	T time.Time
	V float64
}

// chartView is a small line chart drawn on the server as inline SVG, so
// it needs no script. It is described in words too (Summary), and the
// same values are in the table next to it.
type chartView struct {
	ID      string // unique on the page; used for the SVG's title and desc ids
	Title   string
	Summary string
	Points  string // SVG polyline points "x,y x,y …"
	Dots    []dot  // drawn when there are few points
	// Plot area and axis labels.
	W, H           int
	X0, X1, Y0, Y1 float64
	YMax, YMin     string
	XStart, XEnd   string
}

type dot struct{ X, Y float64 }

// Chart geometry, in SVG user units; CSS scales it to the page.
const (
	chartW      = 640
	chartH      = 200
	chartLeft   = 72
	chartRight  = 16
	chartTop    = 16
	chartBottom = 40
	maxDots     = 30
)

func newChart(id, streamTitle, field, unit string, pts []point) chartView {
	cv := chartView{
		ID:    svgID(id),
		Title: upperFirst(field) + " (" + streamTitle + ")",
		W:     chartW, H: chartH,
		X0: chartLeft, X1: chartW - chartRight, Y0: chartTop, Y1: chartH - chartBottom,
	}
	lo, hi := pts[0].V, pts[0].V
	for _, p := range pts {
		lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
	}
	vlo, vhi := lo, hi
	if vhi == vlo {
		pad := math.Max(math.Abs(vlo)*0.1, 1)
		vlo, vhi = vlo-pad, vhi+pad
	}
	t0, t1 := pts[0].T, pts[len(pts)-1].T
	span := t1.Sub(t0)
	var b strings.Builder
	for i, p := range pts {
		x := (cv.X0 + cv.X1) / 2
		if span > 0 {
			x = cv.X0 + (cv.X1-cv.X0)*float64(p.T.Sub(t0))/float64(span)
		}
		y := cv.Y1 - (cv.Y1-cv.Y0)*(p.V-vlo)/(vhi-vlo)
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
		if len(pts) <= maxDots {
			cv.Dots = append(cv.Dots, dot{X: round1(x), Y: round1(y)})
		}
	}
	cv.Points = b.String()
	u := ""
	if unit != "" {
		u = " " + unit
	}
	cv.YMax, cv.YMin = number(vhi), number(vlo)
	layout := "15:04"
	if span >= 24*time.Hour || t0.Local().YearDay() != t1.Local().YearDay() {
		layout = "2 Jan 15:04"
	}
	cv.XStart, cv.XEnd = t0.Local().Format(layout), t1.Local().Format(layout)
	last := pts[len(pts)-1].V
	if len(pts) == 1 {
		cv.Summary = fmt.Sprintf("One reading, at %s: %s%s.", when(t0), number(last), u)
	} else {
		cv.Summary = fmt.Sprintf("%d readings from %s to %s. Lowest %s%s, highest %s%s, latest %s%s.",
			len(pts), when(t0), when(t1), number(lo), u, number(hi), u, number(last), u)
	}
	return cv
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// number formats a value for people: no exponent, at most two decimals.
func number(f float64) string {
	if math.Abs(f) >= 1000 {
		return strconv.FormatFloat(math.Round(f), 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// svgID makes a string safe as an HTML id.
func svgID(s string) string {
	var b strings.Builder
	b.WriteString("chart-")
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}
