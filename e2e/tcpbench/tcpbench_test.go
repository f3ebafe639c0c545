package tcpbench

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestSendCountsEveryByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go Serve(ln)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name     string
		maxBytes int64
		maxTime  time.Duration
	}{
		{"byte budget, not a multiple of the buffer", 3*bufSize + 17, time.Minute},
		{"time limit", 1 << 62, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Send(ctx, ln.Addr().String(), tc.maxBytes, tc.maxTime)
			if err != nil {
				t.Fatal(err)
			}
			if tc.maxBytes < 1<<62 && r.Bytes != tc.maxBytes {
				t.Errorf("server counted %d bytes, want %d", r.Bytes, tc.maxBytes)
			}
			if r.Bytes == 0 || r.Seconds <= 0 || r.MBps() <= 0 {
				t.Errorf("result %+v", r)
			}
		})
	}
}

func TestSendToNothingFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Send(context.Background(), addr, 1, time.Second); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
}
