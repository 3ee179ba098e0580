package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/problem"
	"github.com/candor-iot/candor/internal/store"
)

// pageNames are the page templates; each is parsed together with the
// layout and the shared parts.
var pageNames = []string{
	"setup", "login", "home", "device", "add", "credential", "confirm", "security", "learn", "error",
	"mydata", "log", "verify", "household", "admin", "share",
}

type pageTemplate struct{ t *template.Template }

func mustParsePages(funcs template.FuncMap) map[string]*pageTemplate {
	out := make(map[string]*pageTemplate, len(pageNames))
	for _, name := range pageNames {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
		out[name] = &pageTemplate{t: t}
	}
	return out
}

// page is what every template gets: the layout's fields and the page's
// own Data.
type page struct {
	Title  string
	Nav    string // the main menu entry to mark as the current page
	Viewer *viewerView
	CSRF   string
	// Status is a message about what just happened ("Password changed.").
	Status string
	Errors []formError
	Data   any
	// Operator is who runs the hub, named in the footer (render fills it).
	Operator *operatorView
}

type viewerView struct {
	Username  string
	Household string
	Owner     bool
	Admin     bool // the hub's admin: may see every household (/admin)
}

// formError is one problem with what was typed, shown next to its field
// and in a summary at the top that links to the field.
type formError struct {
	Field   string // the input's id; "" for the whole form
	Message string
}

// FieldError returns the message for one field, or "".
func (p page) FieldError(field string) string {
	for _, e := range p.Errors {
		if e.Field == field {
			return e.Message
		}
	}
	return ""
}

// pageFor starts the page data of a logged-in person.
func (s *Server) pageFor(r *http.Request, v viewer, title, nav string) page {
	vv := &viewerView{Username: v.Account.Username, Owner: v.Owner(), Admin: v.Admin()}
	if hh, err := s.st.Household(r.Context(), v.Account.HouseholdID); err == nil {
		vv.Household = hh.Name
	}
	status := statusMessages[r.URL.Query().Get("done")]
	if r.URL.Query().Get("done") == flashDone {
		// A message the last POST of this session left, made from the
		// hub's own words (never from the query).
		if msg, ok := s.secrets.take(s.now(), v.Session.ID, flashKey); ok {
			status = msg
		}
	}
	return page{Title: title, Nav: nav, Viewer: vv, CSRF: csrfToken(v.token), Status: status}
}

// A POST that has more to say than a fixed message leaves it, bound to the
// session, for the page it redirects to (with ?done=changed).
const (
	flashDone = "changed"
	flashKey  = "\x00flash"
)

// flash leaves msg for the session's next page with ?done=changed.
func (s *Server) flash(v viewer, msg string) {
	s.secrets.put(s.now(), v.Session.ID, flashKey, msg)
}

// statusMessages are the messages a redirect after a change can ask for
// with ?done=; unknown keys show nothing, so no text can be injected.
var statusMessages = map[string]string{
	"password":   "Your password is changed. Your other sessions were ended.",
	"session":    "The session is ended.",
	"revoked":    "The device's credential is revoked. It can no longer connect.",
	"released":   "The device is released. The hub takes its data again.",
	"logged-out": "You are logged out.",
	"setup":      "Your hub is set up. Welcome!",
	// The second factor.
	"second-factor-on":  "Login codes are on. From now on, log in with your password and a code from your app.",
	"second-factor-off": "Login codes are off. Your password alone logs you in.",
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		s.log.Error("no such page template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p.Operator == nil {
		p.Operator = s.operatorOf(r.Context())
	}
	var buf bytes.Buffer
	if err := t.t.Execute(&buf, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "The hub could not show this page. Its log says why.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show private data and one-time secrets: never keep them in a
	// cache, nor in the back/forward cache.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorView struct {
	Heading string
	Message string
}

// renderError shows an error page. Unexpected errors are logged and shown
// without detail.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, err error) {
	ev := errorView{}
	switch status {
	case http.StatusNotFound:
		ev = errorView{"Page not found", "There is no such page here, or it is not yours to see."}
	case http.StatusForbidden:
		ev = errorView{"Not allowed", "Only an owner of this household can do this."}
		if err != nil && !errors.Is(err, identity.ErrForbidden) {
			ev.Message = upperFirst(err.Error()) + "."
		}
	default:
		status = http.StatusInternalServerError
		ev = errorView{"Something went wrong", "The hub could not finish this. Its log says why. Try again in a moment."}
		s.log.Error("page failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	p := page{Title: ev.Heading, Data: ev}
	if v, ok, verr := s.viewerOf(r); verr == nil && ok {
		p = s.pageFor(r, v, ev.Heading, "")
		p.Status = ""
		p.Data = ev
	}
	s.render(w, r, status, "error", p)
}

// fail shows the error page that fits err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, err)
	case errors.Is(err, identity.ErrForbidden):
		s.renderError(w, r, http.StatusForbidden, err)
	case errors.Is(err, access.ErrNotYourChoice):
		s.renderError(w, r, http.StatusForbidden, errors.New(detail(err)))
	default:
		s.renderError(w, r, http.StatusInternalServerError, err)
	}
}

// field names an input for error messages: its id and how a sentence
// calls it ("The username").
type field struct{ id, name string }

// inputErrors turns an identity.ErrInvalid error (detail "password:
// password refused: it is shorter than 12 characters; …") into a sentence
// for the named field ("This password is refused: it is shorter than 12
// characters; …"). fields maps the field names identity uses to inputs; a
// field it does not know goes to the whole form.
func inputErrors(err error, fields map[string]field) []formError {
	msg := detail(err)
	name, rest, found := strings.Cut(msg, ": ")
	f, ok := fields[name]
	if !found || !ok {
		return []formError{{Message: upperFirst(sentence(msg))}}
	}
	for _, what := range []string{"password", "device secret"} {
		if reason, ok := strings.CutPrefix(rest, what+" refused: "); ok {
			return []formError{{Field: f.id, Message: sentence("This " + what + " is refused: " + reason)}}
		}
	}
	return []formError{{Field: f.id, Message: sentence(f.name + " " + rest)}}
}

// detail is what an error of a kind says to the person (problem.Of),
// without the kind's own text; an error without a kind says its text.
func detail(err error) string {
	if _, d, ok := problem.Of(err); ok {
		return d
	}
	return err.Error()
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "!") {
		return s
	}
	return s + "."
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": s.assetURL,
		"term":  termLink,
		"when":  when,
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"contact": func(c string) template.HTML {
			return contactHTML(c)
		},
		"plural": func(n int64, one, many string) string {
			if n == 1 {
				return fmt.Sprintf("%d %s", n, one)
			}
			return fmt.Sprintf("%d %s", n, many)
		},
		"upper":        upperFirst,
		"lowerFirst":   lowerFirst,
		"joinAnd":      joinAnd,
		"whereWords":   whereWords,
		"updatesWords": updatesWords,
		"reach":        reachHTML,
	}
}

// when shows a time the way people read it, in the hub's time zone.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2 Jan 2006, 15:04")
}

// reachHTML says how to use a contact: "write to" an e-mail address, "go
// to" a web address.
func reachHTML(c string) template.HTML {
	c = strings.TrimSpace(c)
	if strings.HasPrefix(c, "https://") || strings.HasPrefix(c, "http://") {
		return "go to " + contactHTML(c)
	}
	return "write to " + contactHTML(c)
}

// contactHTML links an e-mail address or web address; anything else is
// shown as text.
func contactHTML(c string) template.HTML {
	c = strings.TrimSpace(c)
	esc := template.HTMLEscapeString(c)
	switch {
	case strings.HasPrefix(c, "https://") || strings.HasPrefix(c, "http://"):
		return template.HTML(`<a href="` + esc + `" rel="noopener noreferrer">` + esc + `</a>`)
	case strings.Count(c, "@") == 1 && !strings.ContainsAny(c, " <>\"'") && strings.Contains(c[strings.IndexByte(c, '@'):], "."):
		return template.HTML(`<a href="mailto:` + esc + `">` + esc + `</a>`)
	}
	return template.HTML(esc)
}
