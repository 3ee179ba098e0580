package web

import "net/http"

// exportURL is the API's data export; the API and the pages share the
// session cookie, so a plain link downloads the archive.
const exportURL = "/api/v1/export"

type myDataView struct {
	ExportURL string
	Consent   bool // the archive holds consent records
	Log       bool // the archive holds log entries with proofs
}

// myData explains the data export and links to it. Deleting data,
// unlinking devices and deleting the account are not offered yet, and the
// page says so.
func (s *Server) myData(w http.ResponseWriter, r *http.Request, v viewer) {
	p := s.pageFor(r, v, "My data", "my-data")
	p.Data = myDataView{ExportURL: exportURL, Consent: s.cfg.Consent != nil, Log: s.cfg.Log != nil}
	s.render(w, r, http.StatusOK, "mydata", p)
}
