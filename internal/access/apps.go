package access

// CanSwitchApps reports whether p may switch what a household's apps
// receive. An app is the household's own program, installed by its
// people, so any member decides, and the operator acts for the household
// from the local control socket (where apps are set up, as devices are).
func (p Principal) CanSwitchApps(householdID string) bool {
	return p.Operator || p.Member(householdID)
}
