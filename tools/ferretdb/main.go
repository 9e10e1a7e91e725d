// Command ferretdb runs FerretDB 1.24.2 through its embeddable package, for the tests,
// benchmarks and demo of persistent-task-status on machines where no mongod binary can be
// had.
//
// Two things differ from `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`:
//
//  1. That binary panics at start ("Invalid build/version/version.txt") because its version
//     package insists on a generated file when the main module is FerretDB itself. Through the
//     embeddable package the main module is this one, and it starts.
//  2. FerretDB 1.24's SQLite handler does not run an update's query and its write in one
//     transaction (upstream issue FerretDB#3040), so concurrent updates of one document lose
//     writes: 50 concurrent {$inc: {n: 1}} leave n = 7, and two findAndModify calls can both
//     "claim" the same pending document. MongoDB applies each single-document write
//     atomically, and persistent-task-status relies on that. So by default this command puts a
//     wire-protocol proxy in front of FerretDB that forwards one request at a time (each client
//     connection keeps its own backend connection, so cursors and sessions behave as usual).
//     Pass --serialize=false to talk to FerretDB directly.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const opMsg = 2013

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend handler (sqlite or postgresql)")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite data directory URL")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	serialize := flag.Bool("serialize", true, "forward one request at a time so single-document writes are atomic")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	backendAddr := *listen
	var proxyLn net.Listener
	if *serialize {
		var err error
		// Bind the public address first so a busy port fails fast, before FerretDB starts.
		if proxyLn, err = net.Listen("tcp", *listen); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		tmp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		backendAddr = tmp.Addr().String()
		tmp.Close()
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: backendAddr},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if proxyLn != nil {
		go serve(ctx, proxyLn, backendAddr, logger)
		fmt.Fprintf(os.Stderr, "ferretdb listening on mongodb://%s/ (serialized)\n", proxyLn.Addr())
	} else {
		fmt.Fprintf(os.Stderr, "ferretdb listening on %s\n", f.MongoDBURI())
	}
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serve accepts client connections and relays their requests one at a time.
func serve(ctx context.Context, ln net.Listener, backend string, logger *slog.Logger) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var mu sync.Mutex
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logger.Warn("accept", "err", err)
			}
			return
		}
		go relay(ctx, c, backend, &mu)
	}
}

func relay(ctx context.Context, client net.Conn, backend string, mu *sync.Mutex) {
	defer client.Close()
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", backend)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		<-ctx.Done()
		client.Close()
		server.Close()
	}()
	for {
		req, err := readMessage(client)
		if err != nil {
			return
		}
		replies, err := exchange(server, req, mu)
		if err != nil {
			return
		}
		for _, r := range replies {
			if _, err := client.Write(r); err != nil {
				return
			}
		}
	}
}

// exchange sends one request and reads all its replies while holding the lock.
func exchange(server net.Conn, req []byte, mu *sync.Mutex) ([][]byte, error) {
	mu.Lock()
	defer mu.Unlock()
	if _, err := server.Write(req); err != nil {
		return nil, err
	}
	if moreToCome(req) {
		return nil, nil // fire-and-forget (w: 0): no reply
	}
	var replies [][]byte
	for {
		r, err := readMessage(server)
		if err != nil {
			return nil, err
		}
		replies = append(replies, r)
		if !moreToCome(r) {
			return replies, nil
		}
	}
}

func moreToCome(msg []byte) bool {
	return len(msg) >= 20 && binary.LittleEndian.Uint32(msg[12:16]) == opMsg && binary.LittleEndian.Uint32(msg[16:20])&2 != 0
}

func readMessage(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 16 || n > 64<<20 {
		return nil, fmt.Errorf("bad message length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}
