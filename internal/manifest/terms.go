package manifest

import (
	"strings"
	"unicode"
)

// Plain words for the DPV and candor: terms a manifest uses, so a label
// never shows a vocabulary term to the person reading it. A term missing
// from these tables falls back to its name split into lower-case words
// (pd:HouseholdProfile → "household profile"): never as good as a written
// entry, always better than the term itself. Add entries here when a
// manifest uses a new term.

// personalDataWords says, as a noun phrase, what a personal-data category
// is about ("It is about your health").
var personalDataWords = map[string]string{
	"pd:PhysicalHealth":    "your health",
	"pd:Health":            "your health",
	"pd:HealthRecord":      "your health",
	"pd:MedicalHealth":     "your health",
	"pd:MentalHealth":      "how you feel",
	"pd:Biometric":         "your body",
	"pd:Location":          "where you are",
	"pd:PhysicalAddress":   "where you live",
	"pd:TravelHistory":     "where you have been",
	"pd:Preference":        "what you like",
	"pd:Behavioral":        "your habits",
	"pd:Behavioural":       "your habits",
	"pd:Picture":           "how you look",
	"pd:Image":             "how you look",
	"pd:FacialPrint":       "your face",
	"pd:Voice":             "your voice",
	"pd:VoiceRecording":    "your voice",
	"pd:AudioRecording":    "sound in your home",
	"pd:Identifying":       "who you are",
	"pd:Name":              "your name",
	"pd:Age":               "your age",
	"pd:EmailAddress":      "your e-mail address",
	"pd:TelephoneNumber":   "your phone number",
	"pd:HouseholdProfile":  "who lives with you",
	"candor:Presence":      "when someone is home",
	"candor:EnergyUse":     "your energy use",
	"candor:Sleep":         "how you sleep",
	"candor:Video":         "how you look",
	"candor:Audio":         "sound in your home",
	"candor:DeviceSetting": "your settings",
}

// purposeWords says why, as an infinitive ("to bill you"). Used where a
// manifest names a purpose without its own words (a recipient's purpose).
// Reserved purpose terms of the learning uses (see package consent): a
// stream marked candor:machineLearning or candor:automatedDecisions gets a
// switch for that use alone, keyed by one of these. Manifests may not
// declare them in dpv:hasPurpose.
const (
	PurposeMachineLearning    = "candor:MachineLearning"
	PurposeAutomatedDecisions = "candor:AutomatedDecisions"
)

var purposeWords = map[string]string{
	PurposeMachineLearning:                   "to learn from it",
	PurposeAutomatedDecisions:                "to decide things from it automatically",
	"dpv:ServiceProvision":                   "to make the device work",
	"dpv:ServiceOptimisation":                "to make the service work better",
	"dpv:ServiceOptimization":                "to make the service work better",
	"dpv:ServicePersonalisation":             "to fit the service to you",
	"dpv:ServicePersonalization":             "to fit the service to you",
	"dpv:ResearchAndDevelopment":             "to improve the maker's products",
	"dpv:ImproveExistingProductsAndServices": "to improve the maker's products",
	"dpv:CommercialResearch":                 "for research",
	"dpv:AcademicResearch":                   "for research",
	"dpv:Marketing":                          "to sell you things",
	"dpv:Advertising":                        "to show you ads",
	"dpv:PersonalisedAdvertising":            "to show you ads picked for you",
	"dpv:SellDataToThirdParties":             "to sell it to other companies",
	"dpv:LegalCompliance":                    "because the law says so",
	"dpv:FraudPreventionAndDetection":        "to stop fraud",
	"dpv:EnforceSecurity":                    "to keep the system safe",
	"dpv:CustomerCare":                       "to help you when you ask",
	"candor:HomeSecurity":                    "to keep your home safe",
	"candor:HomeAutomation":                  "to run your home for you",
	"candor:EnergyManagement":                "to help you manage your energy use",
	"candor:HealthMonitoring":                "to keep track of your health",
	"candor:Billing":                         "to bill you",
}

// roleWords says what a recipient is to you, as a verb phrase after
// "They" ("They decide how to use it").
var roleWords = map[string]string{
	"dpv:DataController":       "decide how to use it",
	"dpv:JointDataControllers": "decide with others how to use it",
	"dpv:DataProcessor":        "work for the maker",
	"dpv:DataSubProcessor":     "work for the maker",
	"dpv:ThirdParty":           "are another company",
	"dpv:Authority":            "are a public body",
}

// identifiableWords says how a recipient can tell the data is yours.
var identifiableWords = map[string]string{
	"linked":        "linked to you",
	"de-identified": "with your name taken off",
	"anonymous":     "with nothing that points to you",
}

// The three answers to "where does my data go?", from least to most
// exposing.
const (
	GoesNowhere      = "stays on this hub"
	GoesDeidentified = "leaves, de-identified"
	GoesLinked       = "leaves, linked to you"
)

// snoopRisks answers the "can it snoop on me?" question: each risk, in the
// order shown, with the personal-data categories that raise it.
var snoopRisks = []struct {
	Risk  string
	Terms []string
}{
	{"Can see you", []string{"pd:Picture", "pd:Image", "pd:FacialPrint", "candor:Video"}},
	{"Can hear you", []string{"pd:Voice", "pd:VoiceRecording", "pd:AudioRecording", "candor:Audio"}},
	{"Can tell where you are", []string{"pd:Location", "pd:TravelHistory"}},
	{"Can tell when someone is home", []string{"candor:Presence"}},
	{"Can tell things about your health", []string{"pd:PhysicalHealth", "pd:Health", "pd:HealthRecord", "pd:MedicalHealth", "pd:MentalHealth", "pd:Biometric", "candor:Sleep"}},
}

// PersonalDataWords is the plain phrase for a personal-data category.
func PersonalDataWords(term string) string { return lookup(personalDataWords, term) }

// PurposeWords is the plain phrase for a purpose term, starting with "to"
// or "for" where the table has it.
func PurposeWords(term string) string {
	if w, ok := purposeWords[term]; ok {
		return w
	}
	return "for " + TermWords(term)
}

// RoleSentence says in one sentence what a recipient is to you: "They
// decide how to use it.", or for a role without an entry "Their role: joint
// data controllers."
func RoleSentence(term string) string {
	if w, ok := roleWords[term]; ok {
		return "They " + w + "."
	}
	return "Their role: " + TermWords(term) + "."
}

func lookup(table map[string]string, term string) string {
	if w, ok := table[term]; ok {
		return w
	}
	return TermWords(term)
}

// TermWords turns any term into plain lower-case words by dropping its
// prefix and splitting its name at capitals; acronyms stay whole
// ("pd:GPSCoordinate" → "GPS coordinate").
func TermWords(term string) string {
	if i := strings.IndexByte(term, ':'); i >= 0 {
		term = term[i+1:]
	}
	r := []rune(term)
	var words []string
	start := 0
	for i := 1; i < len(r); i++ {
		lowerBefore := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
		acronymEnd := unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])
		if unicode.IsUpper(r[i]) && (lowerBefore || acronymEnd) {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	if start < len(r) {
		words = append(words, string(r[start:]))
	}
	for i, w := range words {
		if !isAcronym(w) {
			words[i] = strings.ToLower(w)
		}
	}
	return strings.Join(words, " ")
}

func isAcronym(w string) bool {
	n := 0
	for _, c := range w {
		if unicode.IsLower(c) {
			return false
		}
		if unicode.IsUpper(c) {
			n++
		}
	}
	return n > 1
}
