package download_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// TestLogBeforeWait: the download's last log line ("download complete",
// or "download ended" with the error) is written before Wait returns, so
// a caller may read or reuse its Logger's writer at once (with -race, a
// line written after Wait is a data race on the buffer). Two ends: a
// complete download, and one that ends with 4.04.
func TestLogBeforeWait(t *testing.T) {
	url := coaprig.ServeFile(t, testrig.Bytes(4<<10, 71), nil)
	for _, tc := range []struct {
		url, want string
	}{
		{url, `msg="download complete"`},
		{url[:len(url)-len("fw.bin")] + "none.bin", `msg="download ended"`},
	} {
		var buf bytes.Buffer // not safe for concurrent use, on purpose
		var sink memSink
		d, err := download.Start(context.Background(), tc.url, &sink, &download.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		d.Wait()
		if got := buf.String(); !bytes.Contains([]byte(got), []byte(tc.want)) {
			t.Errorf("%s: the log when Wait returned lacks %s:\n%s", tc.url, tc.want, got)
		}
	}
}
