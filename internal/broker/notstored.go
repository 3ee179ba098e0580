package broker

import (
	"errors"

	"github.com/candor-iot/candor/internal/ingest"
)

// notStored logs a reading the hub could not store. Storage failures are
// logged by the ingest pipeline: the first at once, then one summary per
// interval. Logging each reading here as well would write a line per
// reading to a disk that is, most likely, full.
func (h *hook) notStored(deviceID, stream string, err error) {
	if errors.Is(err, ingest.ErrStorage) {
		h.log.Debug("reading not stored; not acknowledged", "device", deviceID, "stream", stream, "err", err)
		return
	}
	h.log.Error("reading not stored; not acknowledged", "device", deviceID, "stream", stream, "err", err)
}
