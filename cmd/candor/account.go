package main

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

func runAccount(args []string) error {
	if len(args) == 0 || args[0] != "second-factor" {
		return errors.New("which? candor account second-factor status|reset USERNAME")
	}
	args = args[1:]
	if len(args) == 0 {
		return errors.New("which? candor account second-factor status|reset USERNAME")
	}
	switch args[0] {
	case "status":
		return secondFactorCmd("status", args[1:])
	case "reset":
		return secondFactorCmd("reset", args[1:])
	}
	return fmt.Errorf("unknown account second-factor command %q: use status or reset", args[0])
}

// accountSecondFactorOut is the hub's answer about a person's login codes.
type accountSecondFactorOut struct {
	Account struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"account"`
	SecondFactor struct {
		On           bool      `json:"on"`
		Pending      bool      `json:"pending"`
		Since        time.Time `json:"since"`
		RecoveryLeft int       `json:"recovery_codes_left"`
	} `json:"second_factor"`
}

// secondFactorCmd shows or removes a person's login codes, as the
// operator of the hub (its local control socket).
func secondFactorCmd(what string, args []string) error {
	usage := "candor account second-factor " + what + " USERNAME"
	fs := newFlags("candor account second-factor "+what, usage)
	dir := dataDirFlag(fs)
	jsonOut := fs.Bool("json", false, "print the answer as JSON")
	name, err := parseWithName(fs, args)
	if err != nil {
		return err
	}
	path := "/api/v1/accounts/by-username/" + url.PathEscape(name) + "/second-factor"
	method := "GET"
	if what == "reset" {
		method, path = "POST", path+"/reset"
	}
	var out accountSecondFactorOut
	if err := newLocal(*dir).do(method, path, nil, &out); err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(out)
	}
	sf := out.SecondFactor
	switch {
	case what == "reset":
		fmt.Printf("Login codes of %s removed, with their recovery codes. %s logs in with the password alone now, is told so at the next login, and can add a new app on the Security page. The transparency log records that the operator did it.\n", name, name)
	case sf.On:
		fmt.Printf("%s: login codes on since %s, %d recovery code(s) left.\n", name, sf.Since.UTC().Format("2006-01-02 15:04 UTC"), sf.RecoveryLeft)
	case sf.Pending:
		fmt.Printf("%s: an app was added but not yet confirmed with a code; the password alone logs in.\n", name)
	default:
		fmt.Printf("%s: no login codes; the password alone logs in.\n", name)
	}
	return nil
}
