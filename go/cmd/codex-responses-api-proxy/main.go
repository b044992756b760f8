// Command codex-responses-api-proxy lets an unprivileged user call the OpenAI
// Responses API without seeing the API key: it reads the key from standard
// input into locked memory, listens on 127.0.0.1, and forwards exactly
// POST /v1/responses upstream with the key injected.
//
// House rules: only this file prints or exits. User-facing output goes to
// stderr, one line at a time, prefixed with the program name; stdout is left
// to --help and --version.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	// Trusted roots for minimal containers without a system certificate
	// store; the system roots win wherever they exist.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/openai/codex-responses-api-proxy/go/internal/apikey"
	"github.com/openai/codex-responses-api-proxy/go/internal/dump"
	"github.com/openai/codex-responses-api-proxy/go/internal/harden"
	"github.com/openai/codex-responses-api-proxy/go/internal/netlimit"
	"github.com/openai/codex-responses-api-proxy/go/internal/oidc"
	"github.com/openai/codex-responses-api-proxy/go/internal/peercred"
	"github.com/openai/codex-responses-api-proxy/go/internal/proxy"
	"github.com/openai/codex-responses-api-proxy/go/internal/server"
	"github.com/openai/codex-responses-api-proxy/go/internal/serverinfo"
	"github.com/openai/codex-responses-api-proxy/go/internal/upstream"
)

const progName = "codex-responses-api-proxy"

// version is set at release time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitRuntime = 1 // startup or serving failed
	exitUsage   = 2 // the command line is invalid
)

// shutdownGrace is how long in-flight streams may finish after SIGTERM,
// SIGINT or GET /shutdown.
const shutdownGrace = 5 * time.Second

type cli struct {
	Port           uint16   `placeholder:"PORT" help:"Port to listen on, on 127.0.0.1 only. If not set, an ephemeral port is used."`
	ServerInfo     string   `name:"server-info" placeholder:"FILE" help:"Once listening, write {\"port\":N,\"pid\":N} as one line to FILE."`
	HTTPShutdown   bool     `name:"http-shutdown" help:"Enable GET /shutdown, which answers 200 and stops the proxy."`
	UpstreamURL    string   `name:"upstream-url" placeholder:"URL" default:"https://api.openai.com/v1/responses" help:"Absolute http(s) URL that requests are forwarded to, used verbatim (path and query)."`
	DumpDir        string   `name:"dump-dir" placeholder:"DIR" help:"Write each forwarded request and response to DIR as JSON (credentials redacted)."`
	AllowOrigin    []string `name:"allow-origin" placeholder:"ORIGIN" help:"Allow browser requests from this exact origin (scheme://host[:port]). Repeatable. Off by default."`
	AllowUser      []string `name:"allow-user" placeholder:"USER" help:"Serve only connections from processes of this user (name or uid). Repeatable. Linux only."`
	AllowGroup     []string `name:"allow-group" placeholder:"GROUP" help:"Serve only connections from processes of users in this group (name or gid). Repeatable. Linux only."`
	MaxBodyBytes   int64    `name:"max-body-bytes" placeholder:"N" default:"268435456" help:"Largest request body accepted; larger ones get 413."`
	MaxConnections int      `name:"max-connections" placeholder:"N" default:"2048" help:"Most client connections open at once; beyond it, 503."`

	GitHubOIDC           bool   `name:"github-oidc" help:"GitHub Actions workload identity: read ACTIONS_ID_TOKEN_REQUEST_TOKEN from standard input instead of an API key, and send short-lived OpenAI access tokens obtained for the job's OIDC token, renewed in the background."`
	OIDCAudience         string `name:"oidc-audience" placeholder:"AUDIENCE" help:"With --github-oidc (required): the audience of the GitHub OIDC token."`
	IdentityProviderID   string `name:"identity-provider-id" placeholder:"ID" help:"With --github-oidc (required): the OpenAI workload identity provider."`
	ServiceAccountID     string `name:"service-account-id" placeholder:"ID" help:"With --github-oidc (required): the OpenAI service account."`
	GitHubOIDCRequestURL string `name:"github-oidc-request-url" placeholder:"URL" help:"With --github-oidc (required): the job's ACTIONS_ID_TOKEN_REQUEST_URL (https://, or http:// on loopback)."`
	TokenExchangeURL     string `name:"token-exchange-url" placeholder:"URL" default:"${tokenExchangeURL}" help:"With --github-oidc: the OAuth token exchange endpoint (https://, or http:// on loopback). Default: ${default}."`

	Version kong.VersionFlag `help:"Print the version and exit."`
}

var stderr = newLineLog(os.Stderr)

func main() {
	code := run(os.Args[1:])
	stderr.flush()
	os.Exit(code)
}

func logf(format string, args ...any) { stderr.logf(format, args...) }

func fatalf(code int, format string, args ...any) int {
	logf("error: "+format, args...)
	return code
}

func run(args []string) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name(progName),
		kong.Description("Forward POST /v1/responses to the OpenAI Responses API with an API key read from standard input, which the caller never sees."),
		kong.Vars{"version": versionString(), "tokenExchangeURL": defaultTokenExchangeURL},
		kong.Exit(os.Exit),
	)
	if err != nil {
		return fatalf(exitRuntime, "building command line: %v", err)
	}
	if _, err := parser.Parse(args); err != nil {
		logf("error: %v", err)
		logf("hint: see %s --help", progName)
		return exitUsage
	}
	upstreamURL, err := parseUpstream(c.UpstreamURL)
	if err != nil {
		return fatalf(exitUsage, "--upstream-url: %v", err)
	}
	policy, err := peercred.NewPolicy(c.AllowUser, c.AllowGroup)
	if err != nil {
		return fatalf(exitUsage, "--allow-user/--allow-group: %v", err)
	}
	wi, err := workloadIdentity(&c, upstreamURL)
	if err != nil {
		return fatalf(exitUsage, "%v", err)
	}

	// Harden before the key exists in memory.
	if err := harden.Apply(); err != nil {
		return fatalf(exitRuntime, "hardening the process: %v", err)
	}
	var key *apikey.Key
	var client *upstream.Client
	var tokens *oidc.Source
	if wi == nil {
		if key, err = apikey.Read(os.Stdin); err != nil {
			logf("error: %v", err)
			logf("hint: pipe the key on standard input, e.g. printenv OPENAI_API_KEY | env -u OPENAI_API_KEY %s", progName)
			return exitRuntime
		}
		client, err = upstream.New(upstream.Config{URL: upstreamURL, Auth: key.HeaderLine()})
	} else {
		// Issue 10: every startup failure is one line naming its step,
		// before anything listens or server-info exists.
		if key, err = apikey.ReadFormat(os.Stdin, apikey.RequestTokenFormat); err != nil {
			return fatalf(exitRuntime, "%v (pipe ACTIONS_ID_TOKEN_REQUEST_TOKEN on standard input)", err)
		}
		wi.RequestToken = key.HeaderLine()
		wi.Logf = stderr.batchf
		if tokens, err = oidc.New(*wi); err != nil {
			return fatalf(exitRuntime, "configuring workload identity: %v", err)
		}
		if err := tokens.Start(context.Background()); err != nil {
			return fatalf(exitRuntime, "%v", err)
		}
		client, err = upstream.New(upstream.Config{URL: upstreamURL, NoAuth: true})
	}
	if err != nil {
		return fatalf(exitRuntime, "configuring upstream: %v", err)
	}
	var dumper *dump.Dumper
	if c.DumpDir != "" {
		if dumper, err = dump.New(c.DumpDir, logf); err != nil {
			return fatalf(exitRuntime, "%v", err)
		}
	}

	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(c.Port))))
	if err != nil {
		return fatalf(exitRuntime, "listening on 127.0.0.1:%d: %v", c.Port, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// From here on SIGINT and SIGTERM mean a graceful stop; catch them before
	// the server-info file tells anyone that we are up.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	stop := make(chan struct{})
	cfg := proxy.Config{
		Gate:         proxy.Gate{Shutdown: c.HTTPShutdown, Origins: c.AllowOrigin},
		Upstream:     client,
		Tokens:       tokens,
		UpstreamURL:  upstreamURL.String(),
		Dumper:       dumper,
		MaxBodyBytes: c.MaxBodyBytes,
		Shutdown:     func() { close(stop) },
		Logf:         stderr.batchf,
	}
	if policy != nil {
		cfg.AllowPeer = policy.Allow
	}
	handler := proxy.New(cfg)
	srv := &server.Server{
		Handler: handler,
		// A slow or silent client cannot hold a connection forever; there is
		// no overall deadline, because model responses stream for minutes.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		BodyTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		Admit:             handler.Admit,
		Logf:              stderr.batchf,
	}

	if c.ServerInfo != "" {
		if err := serverinfo.Write(c.ServerInfo, port, os.Getpid()); err != nil {
			ln.Close()
			return fatalf(exitRuntime, "writing server info: %v", err)
		}
	}
	held := "key in " + key.Backing() + " memory"
	if tokens != nil {
		held = "workload identity, request token in " + key.Backing() + " memory"
	}
	logf("listening on 127.0.0.1:%d, forwarding POST /v1/responses to %s (%s)",
		port, upstreamURL.Redacted(), held)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(netlimit.Limit(ln, c.MaxConnections)) }()

	select {
	case err := <-served:
		return fatalf(exitRuntime, "serving: %v", err)
	case s := <-signals:
		logf("received %v, shutting down", s)
	case <-stop:
		logf("shutdown requested over HTTP")
	}

	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		logf("grace period over, closing remaining streams")
		// Handlers may still be writing the key upstream: the exit, not
		// Destroy, takes the key away from them.
		srv.Close()
		return exitOK
	}
	client.CloseIdleConnections()
	if tokens != nil {
		tokens.Close()
	}
	key.Destroy()
	return exitOK
}

// defaultTokenExchangeURL is OpenAI's token endpoint.
const defaultTokenExchangeURL = "https://auth.openai.com/oauth/token"

// workloadIdentity checks the --github-oidc flags (issue 10) and returns the
// configuration they describe, or nil without --github-oidc. Its errors are
// usage errors, found before anything is read from standard input.
func workloadIdentity(c *cli, upstreamURL *url.URL) (*oidc.Config, error) {
	flags := []struct {
		name  string
		value string
	}{
		{"--oidc-audience", c.OIDCAudience},
		{"--identity-provider-id", c.IdentityProviderID},
		{"--service-account-id", c.ServiceAccountID},
		{"--github-oidc-request-url", c.GitHubOIDCRequestURL},
	}
	var named []string
	for _, f := range flags {
		if c.GitHubOIDC == (f.value == "") {
			named = append(named, f.name)
		}
	}
	if !c.GitHubOIDC {
		if c.TokenExchangeURL != defaultTokenExchangeURL {
			named = append(named, "--token-exchange-url")
		}
		if len(named) > 0 {
			return nil, fmt.Errorf("%s only apply with --github-oidc", strings.Join(named, ", "))
		}
		return nil, nil
	}
	if len(named) > 0 {
		return nil, fmt.Errorf("--github-oidc requires %s", strings.Join(named, ", "))
	}
	requestURL, err := oidc.ParseEndpoint(c.GitHubOIDCRequestURL)
	if err != nil {
		return nil, fmt.Errorf("--github-oidc-request-url: %v", err)
	}
	exchangeURL, err := oidc.ParseEndpoint(c.TokenExchangeURL)
	if err != nil {
		return nil, fmt.Errorf("--token-exchange-url: %v", err)
	}
	if err := oidc.CheckUpstream(upstreamURL); err != nil {
		return nil, fmt.Errorf("--upstream-url: %v", err)
	}
	return &oidc.Config{
		RequestURL:         requestURL,
		Audience:           c.OIDCAudience,
		ExchangeURL:        exchangeURL,
		IdentityProviderID: c.IdentityProviderID,
		ServiceAccountID:   c.ServiceAccountID,
	}, nil
}

// parseUpstream accepts only an absolute http or https URL with a host; it is
// used verbatim, path and query included.
func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %q", trim(raw))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("must be an absolute http:// or https:// URL, got %q", trim(raw))
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("must include a host, got %q", trim(raw))
	case u.User != nil:
		return nil, errors.New("must not carry credentials; the key comes from standard input")
	case u.Fragment != "":
		return nil, fmt.Errorf("must not have a fragment, got %q", trim(raw))
	}
	return u, nil
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// versionString is the release version, or the module version for
// `go install` builds.
func versionString() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return version
}
