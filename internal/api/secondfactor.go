package api

import (
	"errors"
	"net/http"

	"github.com/candor-iot/candor/internal/access"
	"github.com/candor-iot/candor/internal/identity"
	"github.com/candor-iot/candor/internal/store"
)

// passwordLogin checks a username and password, and the second factor
// when the account has one: a client either sends the code with the
// password, or sends the password alone, gets a challenge in a 401
// second-factor-required problem, and sends it back with the code.
func (s *Server) passwordLogin(r *http.Request, in credentialsIn, kind store.SessionKind, name string) (store.Session, string, error) {
	ctx := r.Context()
	if in.Challenge != "" {
		return s.id.LoginSecondFactor(ctx, identity.OriginOf(r), in.Challenge, in.Code)
	}
	ss, tok, err := s.id.Login(ctx, identity.OriginOf(r), in.Username, in.Password, kind, name)
	var req *identity.SecondFactorRequiredError
	if errors.As(err, &req) && in.Code != "" {
		return s.id.LoginSecondFactor(ctx, identity.OriginOf(r), req.Challenge, in.Code)
	}
	return ss, tok, err
}

func (s *Server) getSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no password to add a second factor to"))
		return
	}
	st, err := s.id.SecondFactor(r.Context(), p.Account.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// beginSecondFactor enrols an app: the secret, its otpauth URI and the
// recovery codes are in this answer only.
func (s *Server) beginSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no password to add a second factor to"))
		return
	}
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	en, err := s.id.BeginSecondFactor(r.Context(), p.Account.ID, in.Password)
	if errors.Is(err, identity.ErrNoSecretBox) {
		s.fail(w, r, badRequest("this hub cannot keep a second factor"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, en)
}

func (s *Server) confirmSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no second factor"))
		return
	}
	var in struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.id.ConfirmSecondFactor(r.Context(), p.Account.ID, in.Code); err != nil {
		s.fail(w, r, err)
		return
	}
	s.getSecondFactor(w, r, p)
}

func (s *Server) disableSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if p.Operator {
		s.fail(w, r, badRequest("the local operator has no second factor"))
		return
	}
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.id.DisableSecondFactor(r.Context(), p.Account.ID, in.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addLoginNotices adds to a login's answer what the person must be told:
// that someone else removed their second factor since they last logged
// in, and that the hub wants the admin to enrol one first.
func (s *Server) addLoginNotices(r *http.Request, accountID string, out map[string]any) error {
	reset, ok, err := s.id.TakeSecondFactorReset(r.Context(), accountID)
	if err != nil {
		return err
	}
	if ok {
		out["second_factor_reset"] = reset
		out["notice"] = "Your login codes were turned off by the " + reset.By + " on " + reset.At.Format("2 January 2006 at 15:04 UTC") +
			". Your password alone logs you in now. If you did not ask for this, change your password and tell the " + reset.By + "."
	}
	return nil
}

// accountSecondFactor reports whether a person has a second factor, to
// the operator and the admin of their household.
func (s *Server) accountSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	acc, st, err := s.id.AccountSecondFactor(r.Context(), p, r.PathValue("username"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": toAccount(acc), "second_factor": st})
}

// resetSecondFactor removes a person's second factor when they lost both
// their app and their recovery codes.
func (s *Server) resetSecondFactor(w http.ResponseWriter, r *http.Request, p access.Principal) {
	acc, err := s.id.ResetSecondFactor(r.Context(), p, r.PathValue("username"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.id.SecondFactor(r.Context(), acc.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": toAccount(acc), "second_factor": st})
}
