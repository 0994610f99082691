// Command app is the example service: it answers /health with "ok" and
// every other path with its version, on port 8080 (or $PORT).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is set when the image is built: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "app %s\n", version)
	})
	log.Printf("app %s listening on %s", version, addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
