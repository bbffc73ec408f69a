package alipaynotify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the outbox's part of Caddy's admin API (module
// admin.api.alipay_notify), over the configured storage, so that it sees
// every alipay_notify handler's entries, of every instance sharing the
// storage:
//
//	GET    /alipay_notify/outbox[?state=pending|dead|delivered]  the entries, as a JSON array
//	POST   /alipay_notify/outbox/replay  {"ids": [...]} or {"state": "dead"}  → {"replayed": N}
//	DELETE /alipay_notify/outbox/<id>    drops one entry → 204
//	POST   /alipay_notify/outbox/move    {"from": "<forward>", "to": "<forward>"}  → {"moved": N}
//
// "caddy alipay-notify outbox list|replay|drop|move" talks to it.
type AdminAPI struct {
	store *outbox.Store
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.alipay_notify",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision opens the outbox in the config's storage.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.store = outbox.NewStore(ctx.Storage(), ctx.Logger())
	return nil
}

// Routes returns the outbox's admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/alipay_notify/outbox", Handler: caddy.AdminHandlerFunc(a.list)},
		{Pattern: "/alipay_notify/outbox/", Handler: caddy.AdminHandlerFunc(a.entry)},
	}
}

// list answers GET /alipay_notify/outbox.
func (a *AdminAPI) list(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s: GET the list", r.Method)}
	}
	state, err := outbox.ParseState(r.URL.Query().Get("state"))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	entries, err := a.store.List(r.Context(), outbox.Filter{State: state})
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("reading the outbox: %w", err)}
	}
	// Shown without the webhook's body (payment details stay in the
	// storage), and the forward URL without a password.
	for i := range entries {
		entries[i].Body = nil
		entries[i].Forward = outbox.RedactURL(entries[i].Forward)
	}
	return writeJSON(w, http.StatusOK, entries)
}

// replayRequest is the body of POST /alipay_notify/outbox/replay.
type replayRequest struct {
	IDs   []string `json:"ids"`
	State string   `json:"state"`
}

// entry answers POST /alipay_notify/outbox/replay and DELETE
// /alipay_notify/outbox/<id>.
func (a *AdminAPI) entry(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/alipay_notify/outbox/")
	switch {
	case rest == "replay" && r.Method == http.MethodPost:
		return a.replay(w, r)
	case rest == "move" && r.Method == http.MethodPost:
		return a.move(w, r)
	case rest != "" && rest != "replay" && rest != "move" && r.Method == http.MethodDelete:
		id, err := url.PathUnescape(rest)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		return a.drop(w, r, id)
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound,
			Err: errors.New("use GET /alipay_notify/outbox, POST /alipay_notify/outbox/replay, POST /alipay_notify/outbox/move or DELETE /alipay_notify/outbox/<id>")}
	}
}

func (a *AdminAPI) replay(w http.ResponseWriter, r *http.Request) error {
	var req replayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`want {"ids": [...]} or {"state": "dead"}: %w`, err)}
	}
	var n int
	var err error
	switch {
	case len(req.IDs) > 0 && req.State == "":
		n, err = a.store.Replay(r.Context(), "", req.IDs, time.Now())
	case len(req.IDs) == 0 && req.State == string(outbox.Dead):
		n, err = a.store.ReplayDead(r.Context(), "", time.Now())
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(`want {"ids": [...]} or {"state": "dead"}`)}
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("replaying: %w", err)}
	}
	return writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

// moveRequest is the body of POST /alipay_notify/outbox/move.
type moveRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// move hands the entries of a forward URL that no handler delivers to any
// more (a reload changed it) to a handler of this instance: to must be the
// forward URL of an alipay_notify handler with an outbox running here
// (either URL may be given with its password redacted, as the list shows
// it), so that the entries cannot be moved to another place no one
// delivers from.
func (a *AdminAPI) move(w http.ResponseWriter, r *http.Request) error {
	var req moveRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.From == "" || req.To == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(`want {"from": "<forward URL as listed>", "to": "<forward URL of a handler>"} (%v)`, err)}
	}
	to, ok := outbox.ServedForward(req.To)
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: fmt.Errorf("no alipay_notify handler with an outbox forwards to %q on this instance: give the forward URL of one", outbox.RedactURL(req.To))}
	}
	if outbox.NamesForward(req.From, to) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("from and to name the same forward URL: its handler delivers those entries already")}
	}
	n, err := a.store.Move(r.Context(), req.From, to, time.Now())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("moving (%d moved): %w", n, err)}
	}
	return writeJSON(w, http.StatusOK, map[string]int{"moved": n})
}

func (a *AdminAPI) drop(w http.ResponseWriter, r *http.Request, id string) error {
	n, err := a.store.Delete(r.Context(), "", id)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("dropping %q: %w", id, err)}
	}
	if n == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no outbox entry %q", id)}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guards.
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
