package consent

// StreamControl is one stream's control message for its device.
type StreamControl struct {
	Stream  string
	Payload []byte // Decision.Control()
}

// Controls returns the control message of each stream deviceID's manifest
// in force declares, in manifest order, or nil for a device not loaded
// (Allowed loads it). It reads the table in memory only and takes no
// lock, so a listener (OnChange) may call it: a listener that loaded a
// device (Allowed, for one no longer in memory) would wait for the
// service's lock, which a change in progress can hold while it waits for
// its listeners.
func (s *Service) Controls(deviceID string) []StreamControl {
	dt := s.snap.Load().get(deviceID)
	if dt == nil {
		return nil
	}
	streams := dt.entry.Manifest.Streams
	out := make([]StreamControl, len(streams))
	for i, st := range streams {
		out[i] = StreamControl{Stream: st.Name, Payload: dt.lookup(st.Name).Control()}
	}
	return out
}
