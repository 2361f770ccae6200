// Package doctor checks that an XMPP server is set up the way parley-xmpp
// needs it, connecting exactly as the runtime does, and says what to change on
// the server when it isn't. It is `parley-xmpp doctor`.
//
// It works through internal/xmppconn (the only product code touching go-xmpp) and
// internal/stanza, one request at a time. It creates one room of its own
// (parley-doctor-<random> at the MUC service), posts a few messages there and
// destroys it at the end.
package doctor

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-go/parley-xmpp/internal/stanza"
	"github.com/parley-go/parley-xmpp/internal/xmppconn"
	"github.com/parley-go/parley-xmpp/runtime"
	"github.com/parley-go/parley-xmpp/seam"
)

// Status is a check's result.
type Status int

const (
	Pass Status = iota
	Warn        // works, but a setting deserves a look
	Fail        // parley-xmpp will not work as promised
	Skip        // not checked: an earlier check failed
)

func (s Status) String() string {
	return [...]string{"ok", "warn", "FAIL", "skipped"}[s]
}

// Word is the status in the JSON report: pass, warn, fail or skip.
func (s Status) Word() string {
	return [...]string{"pass", "warn", "fail", "skip"}[s]
}

// MarshalText implements encoding.TextMarshaler: Word.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.Word()), nil }

// Check is one line of the report.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`        // what the doctor found
	Fix    string `json:"fix,omitempty"` // what to change on the server (Warn, Fail)
}

// Options configure a diagnosis.
type Options struct {
	Probe runtime.ProbeConfig
	// PersistentRooms: the runtime configures the rooms it creates persistent
	// (runtime.persistent_rooms), so a server's non-persistent default is fine.
	PersistentRooms bool
	// Topics whose archives' retention to check (serve's topics, say).
	Topics []seam.Topic
	// MUCService overrides Probe.MUCService (tests point it at a MAM-less or
	// non-persistent service).
	MUCService string
	// Key is the configuration key of the server's settings, for the
	// advice ("backend_config" when empty, "servers.NAME.backend_config").
	Key string
}

func (o Options) key() string {
	if o.Key == "" {
		return "backend_config"
	}
	return o.Key
}

// Thresholds.
const (
	certWarnDays = 14
	clockWarn    = 5 * time.Second
	clockFail    = 2 * time.Minute
	envelope     = 1024 // bytes of a post's stanza besides its content
)

// Names of the checks, in report order.
const (
	CheckTLS         = "TLS"
	CheckLogin       = "login"
	CheckStreamMgmt  = "stream management"
	CheckMUC         = "MUC service advertises MAM"
	CheckRoom        = "room created, made persistent"
	CheckMAM         = "MAM on for new rooms"
	CheckStanzaSize  = "stanza size limit"
	CheckPageCap     = "MAM page cap"
	CheckRetention   = "retention"
	CheckOwnership   = "topic rooms owned"
	CheckClockOffset = "clock offset"
)

type doctor struct {
	o       Options
	c       *client
	muc     string
	room    string
	nick    string
	report  []Check
	created bool
}

func (d *doctor) add(name string, s Status, detail, fix string) {
	d.report = append(d.report, Check{Name: name, Status: s, Detail: detail, Fix: fix})
}

// Run checks the server and returns the report. It never returns early: a
// check that can't run is reported skipped.
func Run(ctx context.Context, o Options) []Check {
	d := &doctor{o: o, muc: o.Probe.MUCService, nick: "doctor"}
	if o.MUCService != "" {
		d.muc = o.MUCService
	}
	d.room = "parley-doctor-" + strings.ToLower(rand.Text()[:10]) + "@" + d.muc
	timeout := o.Probe.RequestTimeout
	if timeout <= 0 || timeout > 20*time.Second {
		timeout = 20 * time.Second
	}
	c, err := dial(ctx, o.Probe.Dial, timeout)
	if err != nil {
		d.add(CheckTLS, Skip, "no connection", "")
		d.add(CheckLogin, Fail, err.Error(), loginFix(err, o))
		for _, n := range []string{CheckStreamMgmt, CheckMUC, CheckRoom, CheckMAM, CheckStanzaSize, CheckPageCap, CheckRetention, CheckOwnership, CheckClockOffset} {
			d.add(n, Skip, "needs a login", "")
		}
		return d.report
	}
	d.c = c
	defer func() { d.c.close() }()
	d.checkTLS()
	d.add(CheckLogin, Pass, "logged in as "+c.conn.JID(), "")
	d.checkStreamMgmt(ctx)
	service, mamAdvertised := d.checkMUC(ctx)
	joined := false
	if service {
		joined = d.checkRoom(ctx)
	} else {
		d.add(CheckRoom, Skip, "needs a MUC service: "+d.muc+" is none of this server's", "")
	}
	mamOn := d.checkMAM(ctx, joined, mamAdvertised)
	d.checkPageCap(ctx, mamOn)
	d.checkRetention(ctx)
	d.checkOwnership(ctx)
	d.checkClock(ctx)
	d.checkStanzaSize(ctx, joined) // last: a server may end the stream over a stanza too large
	d.cleanup(ctx)
	return d.report
}

// checkStreamMgmt reports whether the server offers XEP-0198 stream
// management with resumption, and its resumption timeout.
func (d *doctor) checkStreamMgmt(ctx context.Context) {
	// The server answers <enable/> before a ping sent after it, and the
	// reader handles what it reads in order: once the ping is answered, the
	// answer to <enable/> is in.
	id := d.c.id("sm")
	if _, err := d.c.iq(ctx, id, stanza.PingIQ(d.o.Probe.Domain, id), nil); err != nil && !errors.As(err, new(*stanza.Error)) {
		d.add(CheckStreamMgmt, Skip, "no answer to a ping: "+err.Error(), "")
		return
	}
	d.report = append(d.report, streamMgmtCheck(d.c.conn.SM(), d.o.Probe.Dial.DisableStreamManagement))
}

// smFix: how to turn stream management on.
const smFix = "enable XEP-0198 stream management with resumption (Prosody: \"smacks\" in modules_enabled, smacks_hibernation_time; ejabberd: mod_stream_mgmt with resume_timeout): a lost link then resumes, rooms kept, instead of every room rejoining and replaying"

func streamMgmtCheck(st xmppconn.SMState, disabled bool) Check {
	c := Check{Name: CheckStreamMgmt}
	switch {
	case !st.Offered:
		c.Status, c.Detail, c.Fix = Warn, "the server offers no stream management (XEP-0198): a lost link recovers in full (every room rejoins and replays)", smFix
	case disabled:
		c.Status, c.Detail = Pass, "offered (XEP-0198); turned off here (runtime.stream_management: false): a lost link recovers in full"
	case !st.Enabled:
		c.Status, c.Detail, c.Fix = Warn, "offered (XEP-0198), but the server refused <enable/>", smFix
	case !st.Resumable:
		c.Status, c.Detail, c.Fix = Warn, "enabled (XEP-0198), without resumption: a lost link recovers in full", smFix
	case st.Max > 0:
		c.Status, c.Detail = Pass, fmt.Sprintf("enabled with resumption (XEP-0198); the server keeps a lost session for %s", st.Max)
	default:
		c.Status, c.Detail = Pass, "enabled with resumption (XEP-0198); the server didn't say its resumption timeout"
	}
	return c
}

func loginFix(err error, o Options) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "host-unknown"), strings.Contains(s, "host-gone"), strings.Contains(s, "improper-addressing"):
		return fmt.Sprintf("the server at %s does not serve the domain %q: set %s.domain (or PARLEY_XMPP_DOMAIN) to a domain it serves, the domain of the account's JID (Prosody: a VirtualHost; ejabberd: hosts), or add %s to the server",
			o.Probe.Dial.Addr, o.Probe.Domain, o.key(), o.Probe.Domain)
	case strings.Contains(s, "not-authorized"), strings.Contains(s, "auth failure"), strings.Contains(s, "authentication"):
		return "check username and password (password_file, PARLEY_XMPP_PASS); register the account on the server (prosodyctl adduser, ejabberdctl register)"
	case strings.Contains(s, "connection refused"), strings.Contains(s, "no such host"), strings.Contains(s, "i/o timeout"), strings.Contains(s, "deadline"):
		return "check service (host and port) and that the server listens for clients there (Prosody c2s_ports, ejabberd listen: ejabberd_c2s)"
	case strings.Contains(s, "TLS") || strings.Contains(s, "tls") || strings.Contains(s, "certificate"):
		return "the server must offer TLS with a certificate for the domain (or use xmpps:// for direct TLS); see the TLS check"
	}
	return fmt.Sprintf("the login as %s@%s at %s failed for a reason the doctor does not know: the server's log says why (prosodyctl / ejabberdctl logs); check %s (service, domain, username, password)",
		o.Probe.Username, o.Probe.Domain, o.Probe.Dial.Addr, o.key())
}

func (d *doctor) checkTLS() {
	st, ok := d.c.conn.TLSState()
	d.report = append(d.report, tlsCheck(st, ok, d.o.Probe, time.Now()))
}

// tlsCheck judges a stream's TLS state at now.
func tlsCheck(st tls.ConnectionState, encrypted bool, p runtime.ProbeConfig, now time.Time) Check {
	c := Check{Name: CheckTLS, Status: Fail}
	if !encrypted {
		// On loopback nothing crosses a network: fine for a server on this
		// machine (the dev servers), worth a look anywhere else.
		if p.Loopback {
			c.Status = Warn
		}
		c.Detail = "the stream is not encrypted (plain text, allowed only because " + plainReason(p) + ")"
		c.Fix = "give the server a certificate for " + p.Domain + " and require encryption (Prosody: c2s_require_encryption = true; ejabberd: starttls_required: true), or connect with xmpps://"
		if p.Loopback {
			c.Fix += "; fine as it is for a server on this machine that only this machine reaches"
		}
		return c
	}
	if len(st.PeerCertificates) == 0 {
		c.Detail, c.Fix = "TLS without a server certificate", "configure a certificate for "+p.Domain
		return c
	}
	cert := st.PeerCertificates[0]
	c.Detail = fmt.Sprintf("%s, certificate for %s (issuer %s), expires %s", tlsVersion(st.Version), certName(cert), cert.Issuer.CommonName, cert.NotAfter.UTC().Format("2006-01-02"))
	switch left := cert.NotAfter.Sub(now); {
	case left <= 0:
		c.Detail += ": expired"
		c.Fix = "renew the certificate"
	case left < certWarnDays*24*time.Hour:
		c.Status = Warn
		c.Detail += fmt.Sprintf(": %d days left", int(left.Hours()/24))
		c.Fix = "renew the certificate (certbot, or your CA) before it expires"
	default:
		c.Status = Pass
	}
	return c
}

func plainReason(p runtime.ProbeConfig) string {
	if p.Loopback {
		return "the server is on loopback"
	}
	return "allow_plaintext is set"
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0304:
		return "TLS 1.3"
	case 0x0303:
		return "TLS 1.2"
	}
	return fmt.Sprintf("TLS 0x%04x", v)
}

func certName(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	return strings.Join(names, ", ")
}

// hasFeature reports whether a disco#info answer lists feature f.
func hasFeature(iq stanza.IQ, f string) bool {
	return slices.Contains(iq.Features, f) || stanza.HasFeature(iq.Payload, f)
}

// noSuchService: the conditions a server answers for a JID that is none of
// its services (Prosody: not-allowed, "Communication with remote domains is
// not enabled"; ejabberd: remote-server-not-found, a DNS lookup that failed).
var noSuchService = []string{"remote-server-not-found", "remote-server-timeout", "not-allowed", "item-not-found",
	"service-unavailable", "recipient-unavailable", "host-unknown", "jid-malformed"}

// mucService is a MUC service the server lists.
type mucService struct {
	jid string
	mam bool
}

// mucServices lists the server's MUC services: the items of the domain's
// disco#items whose disco#info says muc (at most 20 asked).
func (d *doctor) mucServices(ctx context.Context) ([]mucService, error) {
	id := d.c.id("items")
	iq, err := d.c.iq(ctx, id, stanza.DiscoItemsIQ(d.o.Probe.Domain, id), nil)
	if err != nil {
		return nil, err
	}
	var out []mucService
	for i, jid := range iq.Items {
		if i == 20 || jid == "" {
			break
		}
		id := d.c.id("info")
		info, err := d.c.iq(ctx, id, stanza.DiscoInfoIQ(jid, id), nil)
		if err == nil && hasFeature(info, stanza.NSMUC) {
			out = append(out, mucService{jid: jid, mam: hasFeature(info, stanza.NSMAM)})
		}
	}
	return out, nil
}

// pointAtMUC is the advice to set muc_service to one of the server's MUC
// services (found by mucServices), those with MAM first.
func (d *doctor) pointAtMUC(ctx context.Context) string {
	key := d.o.key() + ".muc_service"
	if d.o.MUCService != "" {
		key = "--muc-service"
	}
	list, err := d.mucServices(ctx)
	if err != nil {
		return fmt.Sprintf("set %s to the server's MUC service (the domain %s does not list its services: %v)", key, d.o.Probe.Domain, err)
	}
	slices.SortStableFunc(list, func(a, b mucService) int {
		switch {
		case a.mam == b.mam:
			return 0
		case a.mam:
			return -1
		}
		return 1
	})
	var names []string
	for _, m := range list {
		if m.jid == d.muc {
			continue
		}
		n := m.jid
		if m.mam {
			n += " (with MAM)"
		} else {
			n += " (without MAM)"
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return fmt.Sprintf("the server lists no MUC service on %s (disco#items): add one (Prosody: Component \"muc.%s\" \"muc\" with modules_enabled = { \"muc_mam\" }; ejabberd: mod_muc with host muc.%s, and mod_mam) and set %s to it",
			d.o.Probe.Domain, d.o.Probe.Domain, d.o.Probe.Domain, key)
	}
	return fmt.Sprintf("set %s to the server's MUC service: %s", key, strings.Join(names, ", "))
}

// checkMUC asks the MUC service's disco#info; it reports whether the service
// is one of the server's (else no room can be created there) and whether MAM
// is advertised there.
func (d *doctor) checkMUC(ctx context.Context) (service, mam bool) {
	id := d.c.id("disco")
	iq, err := d.c.iq(ctx, id, stanza.DiscoInfoIQ(d.muc, id), nil)
	var se *stanza.Error
	switch {
	case errors.As(err, &se) && slices.Contains(noSuchService, se.Condition):
		d.add(CheckMUC, Fail, fmt.Sprintf("%s is not a service of this server (service discovery answered %v)", d.muc, err),
			d.pointAtMUC(ctx)+fmt.Sprintf("; or add a MUC component named %s (Prosody: Component \"%s\" \"muc\"; ejabberd: mod_muc host)", d.muc, d.muc))
		return false, false
	case err != nil:
		d.add(CheckMUC, Fail, fmt.Sprintf("%s does not answer service discovery: %v", d.muc, err),
			"check muc_service; the server needs a MUC component at that name (Prosody: Component \""+d.muc+"\" \"muc\"; ejabberd: mod_muc host)")
		return true, false
	}
	switch {
	case !hasFeature(iq, stanza.NSMUC):
		d.add(CheckMUC, Fail, d.muc+" is not a MUC service (no "+stanza.NSMUC+")", d.pointAtMUC(ctx))
		return false, false
	case !hasFeature(iq, stanza.NSMAM):
		d.add(CheckMUC, Fail, d.muc+" does not advertise "+stanza.NSMAM,
			"enable MAM on the MUC service (Prosody: modules_enabled = { \"muc_mam\" } on the component; ejabberd: mod_mam, and mod_muc access_mam)")
		return true, false
	default:
		d.add(CheckMUC, Pass, d.muc+" advertises "+stanza.NSMUC+" and "+stanza.NSMAM, "")
		return true, true
	}
}

const persistentVar = "muc#roomconfig_persistentroom"

func truthy(v string) bool { return v == "1" || v == "true" }

// checkRoom creates the doctor's room and makes it persistent.
func (d *doctor) checkRoom(ctx context.Context) bool {
	if err := d.c.join(ctx, d.room, d.nick); err != nil {
		d.add(CheckRoom, Fail, "creating "+d.room+": "+err.Error(),
			"let the account create rooms (Prosody: restrict_room_creation = false or the account an admin; ejabberd: mod_muc access_create)")
		return false
	}
	d.created = true
	id := d.c.id("instant")
	if _, err := d.c.iq(ctx, id, stanza.InstantRoomIQ(d.room, id), nil); err != nil {
		d.add(CheckRoom, Fail, "the new room refused its configuration: "+err.Error(), "let room creators configure their rooms (they are its owners)")
		return false
	}
	form, err := d.c.form(ctx, d.room)
	if err != nil {
		d.add(CheckRoom, Fail, "the room's configuration form: "+err.Error(), "let room owners configure their rooms")
		return true
	}
	def, ok := form[persistentVar]
	if !ok {
		d.add(CheckRoom, Fail, "the room's configuration offers no "+persistentVar,
			"let rooms be persistent (ejabberd: mod_muc access_persistent)")
		return true
	}
	defaultPersistent := truthy(def)
	if !defaultPersistent {
		id := d.c.id("persist")
		_, err := d.c.iq(ctx, id, stanza.RoomConfigSubmitIQ(d.room, id, []string{persistentVar}, map[string]string{persistentVar: "1"}), nil)
		if err != nil {
			d.add(CheckRoom, Fail, "making the room persistent was refused: "+err.Error(),
				"let room owners make rooms persistent (ejabberd: mod_muc access_persistent; Prosody: allowed by default)")
			return true
		}
		if form, err = d.c.form(ctx, d.room); err != nil || !truthy(form[persistentVar]) {
			d.add(CheckRoom, Fail, fmt.Sprintf("the room accepted persistence but did not keep it (%v)", err), "let room owners make rooms persistent")
			return true
		}
	}
	switch {
	case defaultPersistent:
		d.add(CheckRoom, Pass, "created "+d.room+"; new rooms are persistent by default", "")
	case d.o.PersistentRooms:
		d.add(CheckRoom, Pass, "created "+d.room+" and made it persistent (runtime.persistent_rooms does that for every room it creates)", "")
	default:
		d.add(CheckRoom, Warn, "created "+d.room+" and made it persistent, but new rooms are NOT persistent by default: a room and its archive die with its last occupant",
			"Prosody: muc_room_default_persistent = true; ejabberd: mod_muc default_room_options: {persistent: true}; or set runtime.persistent_rooms: true")
	}
	return true
}

// checkMAM posts to the new room and looks for the post in its archive.
func (d *doctor) checkMAM(ctx context.Context, joined, advertised bool) bool {
	if !joined {
		d.add(CheckMAM, Skip, "needs the doctor's room", "")
		return false
	}
	ids, err := d.c.post(ctx, d.room, []string{"parley-xmpp doctor: is this archived?"})
	if err != nil {
		d.add(CheckMAM, Fail, "posting to the room: "+err.Error(), "let occupants post to rooms")
		return false
	}
	fix := "archive every room (Prosody: muc_mam on the component, muc_log_by_default = true or muc_log_all_rooms = true; ejabberd: mod_muc default_room_options: {mam: true})"
	rows, _, err := d.c.mam(ctx, d.room, 10, true)
	if err != nil {
		d.add(CheckMAM, Fail, "the new room's archive refuses queries: "+err.Error(), fix)
		return false
	}
	for _, r := range rows {
		if ids[0] != "" && r.ID == ids[0] {
			d.add(CheckMAM, Pass, "a post to a new room is in its archive, with the id of its reflection ("+ids[0]+")", "")
			return true
		}
	}
	why := "the post is not in the new room's archive"
	if ids[0] == "" {
		why += " (its reflection carried no stanza-id of the room)"
	}
	if !advertised {
		why += "; the service doesn't advertise MAM"
	}
	d.add(CheckMAM, Fail, why, fix)
	return false
}

// checkPageCap fills the room with one page and one more message, then asks
// for far more rows than any server serves at once (max=10000): the rows
// returned are the server's cap when fewer than the room holds.
func (d *doctor) checkPageCap(ctx context.Context, mamOn bool) {
	if !mamOn {
		d.add(CheckPageCap, Skip, "needs an archived room", "")
		return
	}
	page := d.o.Probe.MAMPageSize
	bodies := make([]string, page+1)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("parley-xmpp doctor: page cap probe %d", i)
	}
	if _, err := d.c.post(ctx, d.room, bodies); err != nil {
		d.add(CheckPageCap, Fail, "posting the probe messages: "+err.Error(), "")
		return
	}
	total := len(bodies) + 1 // and checkMAM's post
	rows, fin, err := d.c.mam(ctx, d.room, 10000, false)
	if err != nil {
		d.add(CheckPageCap, Fail, "asking for 10000 rows: "+err.Error(), "the server should cap a query's rows, not refuse it")
		return
	}
	fix := fmt.Sprintf("set runtime.mam_page_size to at most %d, or raise the server's cap (Prosody: max_archive_query_results)", len(rows))
	switch {
	case len(rows) >= total:
		d.add(CheckPageCap, Pass, fmt.Sprintf("asked for 10000 rows of a room holding %d, got all %d: the cap is at least %d (mam_page_size %d)", total, len(rows), len(rows), page), "")
	case len(rows) >= page:
		d.add(CheckPageCap, Pass, fmt.Sprintf("asked for 10000 rows of a room holding %d, got %d (complete=%v): the server's cap is %d, mam_page_size %d fits", total, len(rows), fin.Complete, len(rows), page), "")
	default:
		d.add(CheckPageCap, Warn, fmt.Sprintf("asked for 10000 rows of a room holding %d, got %d: the server's cap %d is below mam_page_size %d (the runtime pages on, in smaller pages)", total, len(rows), len(rows), page), fix)
	}
}

// squatFix is what to do about a topic's room another account owns.
const squatFix = "another account created the room first and owns it (squatting): have the server destroy it (Prosody: prosodyctl shell, then prosody.hosts['MUC SERVICE'].modules.muc.get_room_from_jid('ROOM JID'):destroy(); ejabberd: ejabberdctl destroy_room NAME SERVICE) so the bridge account creates it anew, or have its owner make this account an owner; then let only this account create rooms (Prosody: restrict_room_creation; ejabberd: mod_muc access_create); see docs/security.md"

// checkOwnership joins each topic's room that exists and reads this account's
// affiliation in its own presence: the runtime takes a topic's room as its own
// (it creates it on first use), so a room another account owns is one it
// squats. A room not there yet passes: the runtime will create it (unless
// another account does first, which this check then shows).
func (d *doctor) checkOwnership(ctx context.Context) {
	if len(d.o.Topics) == 0 {
		d.add(CheckOwnership, Skip, "no topics to look at: name some (doctor TOPIC...) or configure serve routes", "")
		return
	}
	var notes []string
	status, fix := Pass, ""
	worse := func(s Status, f string) {
		if s > status {
			status, fix = s, f
		}
	}
	nick := "parley-doctor-" + strings.ToLower(rand.Text()[:8])
	for _, t := range d.o.Topics {
		local, err := runtime.RoomLocalpart(t)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", t, err))
			worse(Warn, "")
			continue
		}
		room := local + "@" + d.o.Probe.MUCService
		id := d.c.id("exists")
		_, err = d.c.iq(ctx, id, stanza.DiscoInfoIQ(room, id), nil)
		var se *stanza.Error
		switch {
		case errors.As(err, &se) && se.Condition == "item-not-found":
			notes = append(notes, fmt.Sprintf("%s: no room yet (the runtime creates it, and owns it, unless another account creates it first)", t))
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: %s does not answer service discovery: %v", t, room, err))
			worse(Warn, "")
			continue
		}
		p, err := d.c.enter(ctx, room, nick)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %s exists and refuses this account: %v", t, room, err))
			worse(Fail, squatFix)
			continue
		}
		_ = d.c.leave(room, nick)
		switch aff := p.Affiliation; aff {
		case "owner":
			notes = append(notes, fmt.Sprintf("%s: %s is owned by this account", t, room))
		case "":
			notes = append(notes, fmt.Sprintf("%s: %s did not say this account's affiliation", t, room))
			worse(Warn, "")
		case "admin":
			notes = append(notes, fmt.Sprintf("%s: %s gives this account the affiliation admin, not owner: another account owns it", t, room))
			worse(Warn, squatFix)
		default:
			notes = append(notes, fmt.Sprintf("%s: %s gives this account the affiliation %s, not owner: another account owns it", t, room, aff))
			worse(Fail, squatFix)
		}
	}
	d.add(CheckOwnership, status, strings.Join(notes, "; "), fix)
}

// oneWeek is Prosody's default archive expiry (muc_log_expires_after).
const oneWeek = 7 * 24 * time.Hour

// checkRetention reads the oldest message of each topic's room.
func (d *doctor) checkRetention(ctx context.Context) {
	if len(d.o.Topics) == 0 {
		d.add(CheckRetention, Skip, "no topics to look at: name some (doctor TOPIC...) or configure serve routes", "")
		return
	}
	var notes []string
	status, fix := Pass, ""
	for _, t := range d.o.Topics {
		local, err := runtime.RoomLocalpart(t)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", t, err))
			status = max(status, Warn)
			continue
		}
		room := local + "@" + d.o.Probe.MUCService
		rows, fin, err := d.c.mam(ctx, room, 1, false)
		var se *stanza.Error
		switch {
		case errors.As(err, &se) && se.Condition == "item-not-found":
			notes = append(notes, fmt.Sprintf("%s: no room yet", t))
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: %v", t, err))
			status = max(status, Warn)
			continue
		case len(rows) == 0:
			notes = append(notes, fmt.Sprintf("%s: empty archive", t))
			continue
		}
		stamp := rows[0].Message.Stamp
		if stamp.IsZero() {
			notes = append(notes, fmt.Sprintf("%s: the oldest message has no timestamp", t))
			continue
		}
		age := time.Since(stamp)
		note := fmt.Sprintf("%s: oldest message %s old (%s)", t, days(age), stamp.UTC().Format("2006-01-02"))
		if fin.Count > 0 {
			note += fmt.Sprintf(", %d messages", fin.Count)
		}
		if looksLikeOneWeek(age) {
			note += ": looks like a one-week expiry"
			status = max(status, Warn)
			fix = "keep the archive longer than your longest outage (Prosody's default is a week: muc_log_expires_after = \"never\" or a longer period; ejabberd keeps it until purged)"
		}
		notes = append(notes, note)
	}
	d.add(CheckRetention, status, strings.Join(notes, "; "), fix)
}

// looksLikeOneWeek: an archive whose oldest message is a week old, give or
// take half a day, is most likely expiring after a week (Prosody's default).
func looksLikeOneWeek(age time.Duration) bool {
	return age > oneWeek-12*time.Hour && age < oneWeek+12*time.Hour
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// checkClock compares the server's XEP-0202 clock with ours.
func (d *doctor) checkClock(ctx context.Context) {
	server, local, err := d.c.serverTime(ctx, d.o.Probe.Domain)
	if err != nil {
		d.add(CheckClockOffset, Warn, "the server doesn't tell its time (XEP-0202): "+err.Error(),
			"enable entity time (Prosody: the \"time\" module; ejabberd: mod_time) to have the clocks compared")
		return
	}
	off := server.Sub(local)
	// XEP-0202's <utc> has a precision of the server's choosing (Prosody: seconds).
	detail := fmt.Sprintf("server %s, here %s: offset %s", server.UTC().Format(time.RFC3339), local.UTC().Format(time.RFC3339), off.Round(time.Millisecond))
	fix := "synchronise both clocks (NTP: systemd-timesyncd, chrony): message timestamps and archive ages come from the server's"
	switch abs := time.Duration(math.Abs(float64(off))); {
	case abs >= clockFail:
		d.add(CheckClockOffset, Fail, detail, fix)
	case abs >= clockWarn:
		d.add(CheckClockOffset, Warn, detail, fix)
	default:
		d.add(CheckClockOffset, Pass, detail, "")
	}
}

// checkStanzaSize compares the server's advertised limit with
// max_content_bytes; without one, it posts a message of max_content_bytes.
func (d *doctor) checkStanzaSize(ctx context.Context, joined bool) {
	max := d.o.Probe.MaxContentBytes
	need := max + envelope
	fix := sizeFix(need)
	if lim := d.c.conn.AdvertisedMaxBytes(); lim > 0 {
		d.report = append(d.report, advertisedSizeCheck(lim, max))
		return
	}
	if !joined {
		d.add(CheckStanzaSize, Skip, "the server advertises no limit (XEP-0478), and probing needs the doctor's room", "")
		return
	}
	_, err := d.c.post(ctx, d.room, []string{strings.Repeat("x", max)})
	switch {
	case errors.Is(err, errLinkLost):
		d.add(CheckStanzaSize, Fail, fmt.Sprintf("the server advertises no limit (XEP-0478), and ended the stream over a post of max_content_bytes (%d bytes): %v", max, err), fix)
		d.c.close()
		if c, derr := dial(ctx, d.o.Probe.Dial, d.c.timeout); derr == nil { // to clean up
			d.c = c
			if d.c.join(ctx, d.room, d.nick) != nil {
				d.created = false
			}
		} else {
			d.created = false
		}
	case err != nil:
		d.add(CheckStanzaSize, Fail, fmt.Sprintf("the server advertises no limit (XEP-0478), and refused a post of max_content_bytes (%d bytes): %v", max, err), fix)
	default:
		d.add(CheckStanzaSize, Pass, fmt.Sprintf("the server advertises no limit (XEP-0478); a post of max_content_bytes (%d bytes) went through", max), "")
	}
}

// advertisedSizeCheck compares a server's XEP-0478 max-bytes with what a post
// of max_content_bytes needs.
func advertisedSizeCheck(lim, maxContent int) Check {
	need := maxContent + envelope
	c := Check{Name: CheckStanzaSize, Status: Pass,
		Detail: fmt.Sprintf("the server advertises max-bytes %d (XEP-0478); max_content_bytes %d needs about %d", lim, maxContent, need)}
	if lim < need {
		c.Status = Fail
		c.Fix = sizeFix(need)
	}
	return c
}

func sizeFix(need int) string {
	return fmt.Sprintf("raise the server's stanza size limit to at least %d bytes (Prosody: c2s_stanza_size_limit; ejabberd: listen max_stanza_size), or lower runtime.max_content_bytes", need)
}

// cleanup destroys the doctor's room (a tombstone may keep its name).
func (d *doctor) cleanup(ctx context.Context) {
	if !d.created {
		return
	}
	// Even after an interrupt: a short grace to remove the doctor's room.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = d.c.destroy(ctx, d.room)
}

// Failed reports whether any check failed.
func Failed(report []Check) bool {
	for _, c := range report {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Server is one server's report.
type Server struct {
	Name    string  `json:"server"` // "default" for backend_config, else its name under servers
	Service string  `json:"service"`
	Domain  string  `json:"domain"`
	MUC     string  `json:"muc_service"`
	Status  Status  `json:"status"` // the worst of its checks (skipped ones aside)
	Checks  []Check `json:"checks"`
}

// NewServer is the report of a server checked with o.
func NewServer(name string, o Options, checks []Check) Server {
	s := Server{Name: name, Service: o.Probe.Service, Domain: o.Probe.Domain, MUC: o.Probe.MUCService, Checks: checks}
	if o.MUCService != "" {
		s.MUC = o.MUCService
	}
	s.Status = worst(checks)
	return s
}

func worst(checks []Check) Status {
	st := Pass
	for _, c := range checks {
		if c.Status != Skip && c.Status > st {
			st = c.Status
		}
	}
	return st
}

// WriteJSON writes one JSON document with every server's checks:
//
//	{"status": "warn", "servers": [{"server": "default", "service": ...,
//	  "domain": ..., "muc_service": ..., "status": "warn",
//	  "checks": [{"name": "TLS", "status": "warn", "detail": ..., "fix": ...}, ...]}]}
//
// A status is pass, warn, fail or skip (not checked: an earlier check
// failed); the document's is the worst of its servers'.
func WriteJSON(w io.Writer, servers []Server) error {
	var all []Check
	for _, s := range servers {
		all = append(all, s.Checks...)
	}
	if servers == nil {
		servers = []Server{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Status  Status   `json:"status"`
		Servers []Server `json:"servers"`
	}{worst(all), servers})
}

// PrintServers writes each server's table (Print), under a heading naming
// the server when there are several.
func PrintServers(w io.Writer, servers []Server) error {
	for i, s := range servers {
		if len(servers) > 1 {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "server %s (%s, %s at %s)\n", s.Name, s.Service, s.Domain, s.MUC)
		}
		if err := Print(w, s.Checks); err != nil {
			return err
		}
	}
	return nil
}

// Print writes the report as a table, then what to change for each check
// that did not pass.
func Print(w io.Writer, report []Check) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, c := range report {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, c.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := true
	for _, c := range report {
		if c.Fix == "" || c.Status == Pass {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nTo change on the server:")
			first = false
		}
		fmt.Fprintf(w, "  %s (%s): %s\n", c.Name, c.Status, c.Fix)
	}
	return nil
}
