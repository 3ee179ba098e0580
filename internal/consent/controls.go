package consent

// StreamControl is one stream's control message for its device.
type StreamControl struct {
	Stream  string
	Payload []byte // Decision.Control()
}

// Controls returns the control message of each stream deviceID's manifest
// in force declares, in manifest order, or nil for a device not loaded
// (Allowed loads it). It reads the table in memory only and takes no
// lock, so a listener's (OnChange) own lock may be held around it: the
// hub holds the lock it publishes changes under while it reads and sends
// these. Loading under that lock could deadlock: a change in progress
// holds the service's lock while its listener waits for the hub's.
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
