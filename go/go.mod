module github.com/openai/codex-responses-api-proxy/go

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	golang.org/x/crypto/x509roots/fallback v0.0.0-20261030153154-30a33513ff6d
	golang.org/x/sys v0.50.0
)

require github.com/coder/websocket v1.8.15
