package api

import (
	"net/http"
	"time"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

type accountJSON struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	HouseholdID string     `json:"household_id"`
	Role        store.Role `json:"role"`
	Admin       bool       `json:"admin"`
	CreatedAt   time.Time  `json:"created_at"`
}

func toAccount(a store.Account) accountJSON {
	return accountJSON{ID: a.ID, Username: a.Username, HouseholdID: a.HouseholdID, Role: a.Role, Admin: a.Admin, CreatedAt: a.CreatedAt}
}

type sessionJSON struct {
	ID         string            `json:"id"`
	Kind       store.SessionKind `json:"kind"`
	Name       string            `json:"name,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	LastSeenAt time.Time         `json:"last_seen_at"`
	ExpiresAt  *time.Time        `json:"expires_at,omitempty"`
	Current    bool              `json:"current"`
}

func toSession(ss store.Session, current string) sessionJSON {
	out := sessionJSON{ID: ss.ID, Kind: ss.Kind, Name: ss.Name, CreatedAt: ss.CreatedAt, LastSeenAt: ss.LastSeenAt, Current: ss.ID == current}
	if !ss.ExpiresAt.IsZero() {
		t := ss.ExpiresAt
		out.ExpiresAt = &t
	}
	return out
}

func (s *Server) getSetup(w http.ResponseWriter, r *http.Request) {
	need, err := s.id.SetupNeeded(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"needed": need})
}

func (s *Server) postSetup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		SetupToken    string `json:"setup_token"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		HouseholdName string `json:"household_name"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.SetupToken == "" {
		s.fail(w, r, badRequest("setup_token: required; it is printed on the hub's console at first start"))
		return
	}
	acc, err := s.id.Setup(r.Context(), in.SetupToken, in.HouseholdName, identity.NewAccount{Username: in.Username, Password: in.Password})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"account": toAccount(acc)})
}

type credentialsIn struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Name     string `json:"name,omitempty"`
	// Code is the second factor's code (or a recovery code), sent with
	// the password or with the Challenge a first try returned.
	Code      string `json:"code,omitempty"`
	Challenge string `json:"challenge,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in credentialsIn
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	ss, tok, err := s.passwordLogin(r, in, store.SessionBrowser, userAgent(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    tok,
		Path:     "/",
		Expires:  ss.ExpiresAt,
		HttpOnly: true,
		Secure:   s.secureCookies(r),
		SameSite: http.SameSiteLaxMode,
	})
	s.rememberBrowser(w, r, ss.AccountID)
	out := map[string]any{"session": toSession(ss, ss.ID)}
	if err := s.addLoginNotices(r, ss.AccountID, out); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// createToken issues an API token, either for the logged-in caller or for
// a program that presents a username and password.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var in credentialsIn
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.Name == "" {
		s.fail(w, r, badRequest("name: required, so you can recognise the token in your session list"))
		return
	}
	var accountID string
	if tok := bearer(r); tok != "" && in.Username == "" && in.Challenge == "" {
		acc, _, err := s.id.Authenticate(r.Context(), tok)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		accountID = acc.ID
	} else {
		// A program without a session logs in with its password; the
		// session that opens is the token.
		ss, tok, err := s.passwordLogin(r, in, store.SessionToken, in.Name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := map[string]any{"token": tok, "session": toSession(ss, "")}
		if err := s.addLoginNotices(r, ss.AccountID, out); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, out)
		return
	}
	ss, tok, err := s.id.CreateToken(r.Context(), accountID, in.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "session": toSession(ss, "")})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no session"))
		return
	}
	if err := s.id.RevokeSession(r.Context(), p.Account.ID, p.Session.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.endSessionCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		writeJSON(w, http.StatusOK, map[string]any{"operator": true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": toAccount(p.Account), "session": toSession(p.Session, p.Session.ID)})
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no password"))
		return
	}
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.id.ChangePassword(r.Context(), p.Account.ID, in.Current, in.New, p.Session.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no sessions"))
		return
	}
	list, err := s.id.Sessions(r.Context(), p.Account.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, ss := range list {
		out = append(out, toSession(ss, p.Session.ID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no sessions"))
		return
	}
	if err := s.id.RevokeSession(r.Context(), p.Account.ID, r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type householdJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) listHouseholds(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var list []store.Household
	if p.Admin() {
		var err error
		if list, err = s.st.Households(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
	} else {
		hh, err := s.st.Household(r.Context(), p.Account.HouseholdID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		list = []store.Household{hh}
	}
	out := make([]householdJSON, 0, len(list))
	for _, hh := range list {
		out = append(out, householdJSON{ID: hh.ID, Name: hh.Name, CreatedAt: hh.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"households": out})
}

func (s *Server) createHousehold(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !p.Admin() {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	var in struct {
		Name  string        `json:"name"`
		Owner credentialsIn `json:"owner"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	hh, acc, err := s.id.CreateHousehold(r.Context(), in.Name, identity.NewAccount{Username: in.Owner.Username, Password: in.Owner.Password})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"household": householdJSON{ID: hh.ID, Name: hh.Name, CreatedAt: hh.CreatedAt},
		"owner":     toAccount(acc),
	})
}

// householdParam resolves which household a request is about: the
// caller's own, or (for the operator) the one named by ?household=, or the
// only one there is.
func (s *Server) householdParam(r *http.Request, p access.Principal, given string) (string, error) {
	if !p.Operator {
		if given != "" && !p.CanSee(given) {
			return "", identity.ErrForbidden
		}
		return p.Account.HouseholdID, nil
	}
	if given != "" {
		if _, err := s.st.Household(r.Context(), given); err != nil {
			return "", err
		}
		return given, nil
	}
	list, err := s.st.Households(r.Context())
	if err != nil {
		return "", err
	}
	switch len(list) {
	case 0:
		return "", nil // the caller decides whether to create one
	case 1:
		return list[0].ID, nil
	default:
		return "", badRequest("household: this hub has %d households; name one", len(list))
	}
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p access.Principal) {
	hh, err := s.householdParam(r, p, r.URL.Query().Get("household"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.st.Accounts(r.Context(), hh)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]accountJSON, 0, len(list))
	for _, a := range list {
		out = append(out, toAccount(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, p access.Principal) {
	var in struct {
		credentialsIn
		Role      store.Role `json:"role"`
		Household string     `json:"household,omitempty"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	hh, err := s.householdParam(r, p, in.Household)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hh == "" {
		s.fail(w, r, badRequest("household: none exists yet; finish setup first"))
		return
	}
	if !p.CanManage(hh) {
		s.fail(w, r, identity.ErrForbidden)
		return
	}
	if in.Role == "" {
		in.Role = store.RoleMember
	}
	acc, err := s.id.CreateAccount(r.Context(), identity.NewAccount{HouseholdID: hh, Username: in.Username, Password: in.Password, Role: in.Role})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"account": toAccount(acc)})
}

func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 120 {
		ua = ua[:120]
	}
	return ua
}
