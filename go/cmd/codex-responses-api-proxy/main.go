// Command codex-responses-api-proxy forwards POST /v1/responses to the
// OpenAI Responses API with an API key read from standard input.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "codex-responses-api-proxy: not built yet")
	os.Exit(1)
}
