// A tiny static program for the node's own tests (no registry, no libc in the image):
//
//	probe serve :8080            HTTP: /healthz -> ok, / -> the pod's host name
//	probe get URL                prints the body of one GET, exit 1 on failure (DNS via /etc/resolv.conf)
//	probe post URL JSON          the same for one POST of a JSON body
//	probe crash MESSAGE          prints MESSAGE and exits 3
//	probe eat MiB                allocates and touches MiB of memory, then sleeps
//
// Installed as /usr/bin/python3 in the engine stand-in image, it is started with the engine's command line
// (`python3 -m vllm...`) and does what $PROBE_AS_ENGINE says: `crash:MESSAGE` or `eat:MiB`.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-m" {
		mode, arg, _ := strings.Cut(os.Getenv("PROBE_AS_ENGINE"), ":")
		os.Args = []string{os.Args[0], mode, arg}
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve ADDR | get URL | crash MESSAGE | eat MiB")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, host) })
		fmt.Println("serving on", os.Args[2])
		if err := http.ListenAndServe(os.Args[2], nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "get", "post":
		client := http.Client{Timeout: 60 * time.Second}
		var resp *http.Response
		var err error
		if os.Args[1] == "post" && len(os.Args) > 3 {
			resp, err = client.Post(os.Args[2], "application/json", strings.NewReader(os.Args[3]))
		} else {
			resp, err = client.Get(os.Args[2])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Print(string(body))
		if resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
	case "crash":
		fmt.Println(os.Args[2])
		os.Exit(3)
	case "eat":
		var mib int
		fmt.Sscan(os.Args[2], &mib)
		chunks := make([][]byte, 0, mib)
		for i := 0; i < mib; i++ {
			chunk := make([]byte, 1<<20)
			for j := range chunk {
				chunk[j] = 1
			}
			chunks = append(chunks, chunk)
		}
		fmt.Println("holding", len(chunks), "MiB")
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
