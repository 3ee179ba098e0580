package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncData flushes f's data as SQLite's own WAL syncs do on Linux
// (fdatasync): a full fsync would also write the file's times to the
// journal, a journal commit per merge step that the commits' syncs
// never pay.
func syncData(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
