// Over 300 lines: one program that follows the provider's connection code step by step; split, it would no longer read alongside it.
// provider-ssh: runs ONE remote command the way pulumi/pulumi-command v1.2.1 runs a
// `command:remote:Command` step, with the same SSH library (golang.org/x/crypto/ssh), so the test
// harness meets the provider's SSH rules instead of OpenSSH's client's.
//
//	provider-ssh REQUEST.json RESULT.json
//
// REQUEST: {"connection": {...as the program's remote.Command inputs hold it...}, "command": "...",
// "stdin"?: "...", "environment"?: {...}, "retryDelayMs"?: n}. RESULT: {"stdout", "stderr",
// "exitCode", "error", "status"}. Exits 0 once RESULT is written, whatever the command did.
//
// Written for this project, following (not copying) these sources at tag v1.2.1 of
// pulumi/pulumi-command, provider/pkg/provider/remote/:
//   - connection.go: defaults (Annotate), SSHConfig, dialWithRetry, Dial (proxy included)
//   - proxyConnection.go: the proxy's defaults
//   - connection_unix.go: the agent socket (SSH_AUTH_SOCK when agentSocketPath is unset)
//   - commandOutputs.go: run (stdin, environment, buffers, error text, trimmed outputs)
//
// and pulumi/pulumi sdk/go/common/util/retry/until.go (the back-off dialWithRetry gets from
// retry.Until: 100ms, x1.5, at most 5s). Built with Debian's x/crypto 0.4.0; the provider
// v1.2.1 links x/crypto v0.48.0 (provider/go.mod). Where the two differ in a way a test sees, the
// conformance test says so (providerSsh.test.ts).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// connection mirrors connectionBase + Proxy (connection.go); pointers keep "unset" apart from zero.
type connection struct {
	User               *string     `json:"user"`
	Password           *string     `json:"password"`
	Host               *string     `json:"host"`
	Port               *float64    `json:"port"`
	PrivateKey         *string     `json:"privateKey"`
	PrivateKeyPassword *string     `json:"privateKeyPassword"`
	AgentSocketPath    *string     `json:"agentSocketPath"`
	DialErrorLimit     *int        `json:"dialErrorLimit"`
	PerDialTimeout     *int        `json:"perDialTimeout"`
	HostKey            *string     `json:"hostKey"`
	Proxy              *connection `json:"proxy"`
}

type request struct {
	Connection  *connection       `json:"connection"`
	Command     string            `json:"command"`
	Stdin       *string           `json:"stdin"`
	Environment map[string]string `json:"environment"`
	// Test-only: the first retry delay (the provider's is retry.DefaultDelay, 100ms).
	RetryDelayMs *int `json:"retryDelayMs"`
}

type result struct {
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
	ExitCode int     `json:"exitCode"`
	Error    *string `json:"error"`
	// The provider's status lines (InfoStatus in dialWithRetry), e.g. "Dial 1/10 failed: retrying".
	Status []string `json:"status"`
}

// Back-off of retry.Until with an empty Acceptor (until.go: DefaultDelay, DefaultBackoff,
// DefaultMaxDelay).
var (
	retryDelay    = 100 * time.Millisecond
	retryBackoff  = 1.5
	retryMaxDelay = 5 * time.Second
	status        []string
)

// applyDefaults: what the provider's Annotate SetDefault gives (connection.go, proxyConnection.go):
// user root, port 22, dialErrorLimit 10, perDialTimeout 15, for the target and the proxy alike.
func applyDefaults(c *connection) {
	if c == nil {
		return
	}
	if c.User == nil {
		u := "root"
		c.User = &u
	}
	if c.Port == nil {
		p := 22.0
		c.Port = &p
	}
	if c.DialErrorLimit == nil {
		d := 10
		c.DialErrorLimit = &d
	}
	if c.PerDialTimeout == nil {
		t := 15
		c.PerDialTimeout = &t
	}
	applyDefaults(c.Proxy)
}

// sshConfig follows connectionBase.SSHConfig (connection.go).
func sshConfig(c *connection) (*ssh.ClientConfig, error) {
	// Without a host key nothing is checked; with one, only that key and only its type's algorithm.
	hostKeyCallback := ssh.InsecureIgnoreHostKey()
	var hostKeyAlgorithms []string
	if c.HostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("failed to parse host key: %w", err)
		}
		hostKeyCallback = ssh.FixedHostKey(key)
		hostKeyAlgorithms = []string{key.Type()}
	}
	config := &ssh.ClientConfig{
		User:              *c.User,
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: hostKeyAlgorithms,
		Timeout:           time.Second * time.Duration(*c.PerDialTimeout),
	}
	// Auth methods in the provider's order: private key, password (+ keyboard-interactive), agent.
	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		password := *c.Password
		config.Auth = append(config.Auth, ssh.Password(password))
		config.Auth = append(config.Auth, ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	socket := c.AgentSocketPath
	if socket == nil {
		if env := os.Getenv("SSH_AUTH_SOCK"); env != "" {
			socket = &env
		}
	}
	if socket != nil {
		conn, err := net.Dial("unix", *socket)
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	return config, nil
}

// dialWithRetry follows connection.go's dialWithRetry over retry.Until: attempt `try` (from 0)
// fails; once try+1 > maxAttempts (unless maxAttempts is -1) it gives up with
// "after <try> failed attempts: <err>", so a limit of N makes N+1 attempts.
func dialWithRetry[T any](msg string, maxAttempts int, f func() (T, error)) (T, error) {
	delay := retryDelay
	for try := 0; ; try++ {
		if delay > retryMaxDelay {
			delay = retryMaxDelay
		}
		value, err := f()
		if err == nil {
			return value, nil
		}
		dials := try + 1
		if maxAttempts > -1 && dials > maxAttempts {
			var zero T
			return zero, fmt.Errorf("after %d failed attempts: %w", try, err)
		}
		limit := "inf"
		if maxAttempts != -1 {
			limit = fmt.Sprintf("%d", maxAttempts)
		}
		status = append(status, fmt.Sprintf("%s %d/%s failed: retrying", msg, dials, limit))
		time.Sleep(delay)
		delay = time.Duration(float64(delay) * retryBackoff)
	}
}

func endpoint(c *connection) string {
	return net.JoinHostPort(*c.Host, fmt.Sprintf("%d", int(*c.Port)))
}

// dial follows Connection.Dial (connection.go), proxy included.
func dial(c *connection) (*ssh.Client, error) {
	config, err := sshConfig(c)
	if err != nil {
		return nil, err
	}
	target := endpoint(c)
	tries := *c.DialErrorLimit
	if c.Proxy == nil {
		return dialWithRetry("Dial", tries, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", target, config)
		})
	}
	proxyConfig, err := sshConfig(c.Proxy)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	proxyClient, err := dialWithRetry("Dial proxy", *c.Proxy.DialErrorLimit, func() (*ssh.Client, error) {
		return ssh.Dial("tcp", endpoint(c.Proxy), proxyConfig)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	conn, err := dialWithRetry("Dial from proxy", tries, func() (net.Conn, error) {
		return proxyClient.Dial("tcp", target)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// As the provider does: the SSH handshake over the forwarded connection is retried on the
	// same net.Conn (a second attempt after a failed handshake meets a used stream).
	var channels <-chan ssh.NewChannel
	var requests <-chan *ssh.Request
	sshConn, err := dialWithRetry("Dial", tries, func() (ssh.Conn, error) {
		c, ch, r, err := ssh.NewClientConn(conn, target, config)
		channels, requests = ch, r
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return ssh.NewClient(sshConn, channels, requests), nil
}

// lockedWriter: the provider writes stdout and stderr into one unguarded bytes.Buffer from two
// goroutines; we keep its arrival order without the data race.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// run follows CommandOutputs.run (commandOutputs.go).
func run(req *request, res *result) error {
	client, err := dial(req.Connection)
	if err != nil {
		return err
	}
	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer session.Close()
	for k, v := range req.Environment {
		if err := session.Setenv(k, v); err != nil {
			return fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	// Stdin only when non-empty: otherwise the command reads an immediate end of input.
	if req.Stdin != nil && len(*req.Stdin) > 0 {
		session.Stdin = strings.NewReader(*req.Stdin)
	}
	var stdoutbuf, stderrbuf, stdouterrbuf bytes.Buffer
	var mu sync.Mutex
	combined := lockedWriter{&mu, &stdouterrbuf}
	// Live as it arrives (the provider logs it line by line to the engine) and captured.
	session.Stdout = io.MultiWriter(&stdoutbuf, combined, lockedWriter{&mu, os.Stdout})
	session.Stderr = io.MultiWriter(&stderrbuf, combined, lockedWriter{&mu, os.Stderr})

	err = session.Run(req.Command)
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
	}
	// Trimmed as the provider stores them; on failure it stores none (the harness must not either).
	res.Stdout = strings.TrimSuffix(stdoutbuf.String(), "\n")
	res.Stderr = strings.TrimSuffix(stderrbuf.String(), "\n")
	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, req.Command, stdouterrbuf.String())
	}
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "provider-ssh: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: provider-ssh REQUEST.json RESULT.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var req request
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&req); err != nil {
		fail("bad request %s: %v", os.Args[1], err)
	}
	if req.Connection == nil || req.Connection.Host == nil || (req.Connection.Proxy != nil && req.Connection.Proxy.Host == nil) {
		fail("bad request %s: connection.host (and proxy.host when a proxy is given) is required", os.Args[1])
	}
	if req.RetryDelayMs != nil {
		retryDelay = time.Duration(*req.RetryDelayMs) * time.Millisecond
	}
	applyDefaults(req.Connection)

	res := result{ExitCode: -1}
	if err := run(&req, &res); err != nil {
		text := err.Error()
		res.Error = &text
	}
	res.Status = status
	if res.Status == nil {
		res.Status = []string{}
	}
	out, err := json.Marshal(res)
	if err != nil {
		fail("%v", err)
	}
	if err := os.WriteFile(os.Args[2], out, 0o600); err != nil {
		fail("%v", err)
	}
}
