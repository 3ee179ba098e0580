package updates

import (
	"errors"
	"fmt"
	"net"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Reason is why the hub refused an update, as a short stable word (log
// detail, API field) with a plain-language explanation (Plain).
type Reason string

// The reasons an update or a repository's metadata is refused.
const (
	ReasonSignature   Reason = "bad-signature"   // a signature is wrong or too few keys signed
	ReasonExpired     Reason = "expired"         // metadata past its expiry: a freeze attack or a neglected repository
	ReasonRollback    Reason = "rollback"        // metadata older than what the hub has already seen
	ReasonMismatch    Reason = "target-mismatch" // the file's length or hash differ from the signed metadata
	ReasonDowngrade   Reason = "downgrade"       // the firmware is older than the one installed
	ReasonUnreachable Reason = "unreachable"     // the repository could not be reached
	ReasonInvalid     Reason = "invalid"         // metadata or a target's description is malformed
)

// Plain says what the reason means for the person looking after the device.
func (r Reason) Plain() string {
	switch r {
	case ReasonSignature:
		return "The update was not signed by the maker's keys, so it could be forged. It was not installed."
	case ReasonExpired:
		return "The maker's update list is out of date. Someone may be hiding newer updates, so nothing was installed."
	case ReasonRollback:
		return "The maker's update list is older than one the hub already saw. Someone may be replaying old updates, so nothing was installed."
	case ReasonMismatch:
		return "The update file is not the one the maker signed. It was not installed."
	case ReasonDowngrade:
		return "The update is older than the firmware on the device. Going back could bring back fixed flaws, so it was not installed."
	case ReasonUnreachable:
		return "The hub could not reach the maker's update server. It will try again."
	case ReasonInvalid:
		return "The maker's update list could not be read. Nothing was installed."
	}
	return "The update was refused."
}

// RefusedError is an update or a repository refresh the hub refused.
type RefusedError struct {
	Reason Reason
	Where  string // the repository URL or the target path
	Err    error  // go-tuf's error, or nil for a downgrade
}

func (e *RefusedError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("update refused (%s): %s", e.Reason, e.Where)
	}
	return fmt.Sprintf("update refused (%s): %s: %v", e.Reason, e.Where, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refused classifies one of go-tuf's errors.
func refused(where string, err error) *RefusedError {
	var re *RefusedError
	if errors.As(err, &re) {
		return re
	}
	var (
		unsigned *metadata.ErrUnsignedMetadata
		expired  *metadata.ErrExpiredMetadata
		badVer   *metadata.ErrBadVersionNumber
		mismatch *metadata.ErrLengthOrHashMismatch
		tooLong  *metadata.ErrDownloadLengthMismatch
		httpErr  *metadata.ErrDownloadHTTP
		download *metadata.ErrDownload
		netErr   net.Error
		reason   = ReasonInvalid
	)
	switch {
	case errors.As(err, &unsigned):
		reason = ReasonSignature
	case errors.As(err, &expired):
		reason = ReasonExpired
	case errors.As(err, &badVer):
		reason = ReasonRollback
	case errors.As(err, &mismatch), errors.As(err, &tooLong):
		reason = ReasonMismatch
	case errors.As(err, &httpErr), errors.As(err, &download), errors.As(err, &netErr):
		reason = ReasonUnreachable
	}
	return &RefusedError{Reason: reason, Where: where, Err: err}
}
