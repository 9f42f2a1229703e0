#!/usr/bin/env bash
# start.sh DIR [PORT] -- start a throwaway Synapse (the version pinned in requirements.txt) on
# 127.0.0.1 for the gateway's integration tier. Any Linux box with Python 3.10+ and access to
# the Python package registry (PyPI) or a mirror of it (pip's usual PIP_INDEX_URL).
#
# Idempotent. Everything it creates lives in DIR:
#   DIR/venv/            venv with matrix-synapse and its dependencies (pip --require-hashes)
#   DIR/homeserver.yaml  generated on every start (edit nothing there; drop overrides in DIR/conf.d/*.yaml)
#   DIR/homeserver.db    SQLite database (kept across restarts)
#   DIR/synapse.log      Synapse log;  DIR/synapse.pid  PID of the Synapse process
#   DIR/kit-state.json   secrets, port, server_name and admin credentials (kept across restarts)
#   DIR/RUNNING.json     connection details for tests (removed by stop.sh)
#
# Steps: (a) venv + pip install -r requirements.txt (skipped when already done)
#        (b) generate config  (c) start detached, wait for /_matrix/client/versions
#        (d) create/log in the admin user  (e) write RUNNING.json, print one line.
# If Synapse is already running in DIR it only prints the line.
#
# Environment: SYNAPSE_SERVER_NAME (default test.local; fixed once DIR has a database)
#              SYNAPSE_START_TIMEOUT (seconds to wait for Synapse, default 60)
#              SYNAPSE_PYTHON (the Python 3.10+ to build the venv with, default python3)
# Same DIR layout, RUNNING.json and behaviour as the shared 1.67 kit, but standalone.
set -Eeuo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REQUIREMENTS=$SCRIPT_DIR/requirements.txt
SYNAPSE_VERSION=$(sed -n 's/^matrix-synapse==\([^ ;]*\).*/\1/p' "$REQUIREMENTS" 2>/dev/null | head -n 1)
PY=$(command -v "${SYNAPSE_PYTHON:-python3}" || true)

unset PYTHONPATH PYTHONHOME
export PYTHONNOUSERSITE=1

LOG=""   # the log whose tail is shown on failure
show_log() {
  if [ -n "$LOG" ] && [ -s "$LOG" ]; then
    echo "--- last 20 lines of $LOG ---" >&2
    tail -n 20 -- "$LOG" >&2
  fi
}
fail_quiet() {   # the helper already printed the reason; its exit code 2 means "no log tail"
  local rc=$?
  trap - ERR
  [ "$rc" -eq 2 ] || show_log
  exit 1
}
die() { trap - ERR; echo "start.sh: ERROR: $*" >&2; show_log; exit 1; }
usage_error() { trap - ERR; echo "start.sh: ERROR: $*" >&2; exit 1; }   # no log tail
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
  echo "usage: start.sh DIR [PORT]" >&2; exit 2
fi
PORT_ARG=${2:-}
if [ -n "$PORT_ARG" ] && { ! [[ $PORT_ARG =~ ^[1-9][0-9]{0,4}$ ]] || [ "$PORT_ARG" -gt 65535 ]; }; then
  usage_error "PORT must be a number 1-65535, got '$PORT_ARG'"
fi
mkdir -p -- "$1" || die "cannot create DIR $1"
DIR=$(cd -- "$1" && pwd -P)
VENV=$DIR/venv
CFG=$DIR/homeserver.yaml
PIDFILE=$DIR/synapse.pid
SLOG=$DIR/synapse.log
RUNNING=$DIR/RUNNING.json

# One start.sh/stop.sh at a time per DIR.
exec 9>>"$DIR/.kit.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || die "timed out waiting for $DIR/.kit.lock (another start.sh/stop.sh on $DIR?)"
fi

# ---------------------------------------------------------------------------------------------
# Helper in Python (stdlib only, run with /usr/bin/python3): config, port check, wait, admin.
HELPER=$(cat <<'PYEOF'
import base64, hashlib, hmac, json, os, re, secrets, socket, string, sys, time
import urllib.error, urllib.request

def fail(msg, code=1):   # code 2: usage/conflict error, the Synapse log is irrelevant
    sys.stderr.write("start.sh: ERROR: %s\n" % msg)
    sys.exit(code)

# Never go through an HTTP proxy from the environment: we only talk to 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def http(method, url, body=None, token=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        out = json.loads(raw) if raw else {}
    except ValueError:
        out = {"_body": raw[:200].decode("utf-8", "replace")}
    return status, out

def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default

def save(path, obj, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)

def q(s):
    return json.dumps(s)   # a JSON string is a valid YAML double-quoted scalar

def key_id(d):
    with open(os.path.join(d, "signing.key")) as f:
        alg, version, _ = f.read().split()
    return "%s:%s" % (alg, version)

def alive(pid, cfg):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return state != "Z" and b"synapse.app.homeserver" in args and cfg.encode() in args

RC = "{per_second: 1000, burst_count: 1000}"
CONFIG = """\
# GENERATED by scripts/synapse/start.sh on every start -- do not edit.
# Put overrides in {confd}/*.yaml (top-level keys there replace the ones here).
server_name: {server_name}
public_baseurl: {public_baseurl}
pid_file: {pid_file}
listeners:
  - port: {port}
    type: http
    tls: false
    x_forwarded: true
    bind_addresses: ["127.0.0.1"]
    resources:
      - names: [client, federation]
        compress: false
database:
  name: sqlite3
  args:
    database: {database}
log_config: {log_config}
media_store_path: {media_store}
signing_key_path: {signing_key}
enable_registration: false
registration_shared_secret: {registration_shared_secret}
macaroon_secret_key: {macaroon_secret_key}
form_secret: {form_secret}
report_stats: false
# No internet: never fetch keys from matrix.org.
trusted_key_servers: []
suppress_key_server_warning: true
# Tests only: cheap password hashing (default 12 rounds costs ~0.25 s per register/login).
bcrypt_rounds: 4
# Relaxed rate limits so test traffic is never throttled.
rc_message: {rc}
rc_registration: {rc}
rc_registration_token_validity: {rc}
rc_login:
  address: {rc}
  account: {rc}
  failed_attempts: {rc}
rc_admin_redaction: {rc}
rc_joins:
  local: {rc}
  remote: {rc}
rc_joins_per_room: {rc}
rc_key_requests: {rc}
rc_3pid_validation: {rc}
rc_invites:
  per_room: {rc}
  per_user: {rc}
  per_issuer: {rc}
rc_third_party_invite: {rc}
rc_room_creation: {rc}
rc_reports: {rc}
rc_delayed_event_mgmt: {rc}
rc_media_create: {rc}
rc_presence:
  per_user: {rc}
rc_federation:
  window_size: 1000
  sleep_limit: 1000
  sleep_delay: 1
  reject_limit: 1000
  concurrent: 1000
"""

LOG_CONFIG = """\
# GENERATED by scripts/synapse/start.sh. Logs go to stderr, which start.sh appends to synapse.log.
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
loggers:
  synapse.storage.SQL:
    level: INFO
root:
  level: INFO
  handlers: [console]
disable_existing_loggers: false
"""

def cmd_config(d, port_arg):
    """Create/refresh kit-state.json, signing key, homeserver.yaml, log.config. Print the port."""
    state_path = os.path.join(d, "kit-state.json")
    state = load(state_path, {})
    env_name = os.environ.get("SYNAPSE_SERVER_NAME") or None
    has_db = os.path.exists(os.path.join(d, "homeserver.db"))
    if state.get("server_name") and env_name and env_name != state["server_name"] and has_db:
        fail("%s already holds a database for server_name %s; SYNAPSE_SERVER_NAME=%s needs a "
             "fresh DIR (Synapse cannot change its server_name)" % (d, state["server_name"], env_name), 2)
    server_name = env_name or state.get("server_name") or "test.local"
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", server_name):
        fail("invalid server_name %r" % server_name, 2)
    port = int(port_arg) if port_arg else int(state.get("port") or 8008)
    state["server_name"] = server_name
    state["port"] = port
    for k in ("registration_shared_secret", "macaroon_secret_key", "form_secret", "admin_password"):
        state.setdefault(k, secrets.token_urlsafe(32))
    save(state_path, state, 0o600)

    key_path = os.path.join(d, "signing.key")
    if not os.path.exists(key_path):
        version = "a_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
        seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        with open(key_path, "w") as f:
            f.write("ed25519 %s %s\n" % (version, seed))
        os.chmod(key_path, 0o600)
    os.makedirs(os.path.join(d, "media_store"), exist_ok=True)
    os.makedirs(os.path.join(d, "conf.d"), exist_ok=True)
    with open(os.path.join(d, "log.config"), "w") as f:
        f.write(LOG_CONFIG)
    text = CONFIG.format(
        confd=os.path.join(d, "conf.d"),
        server_name=q(server_name),
        public_baseurl=q("http://127.0.0.1:%d/" % port),
        pid_file=q(os.path.join(d, "synapse.pid")),
        port=port,
        database=q(os.path.join(d, "homeserver.db")),
        log_config=q(os.path.join(d, "log.config")),
        media_store=q(os.path.join(d, "media_store")),
        signing_key=q(key_path),
        registration_shared_secret=q(state["registration_shared_secret"]),
        macaroon_secret_key=q(state["macaroon_secret_key"]),
        form_secret=q(state["form_secret"]),
        rc=RC)
    tmp = os.path.join(d, "homeserver.yaml.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, os.path.join(d, "homeserver.yaml"))
    print(port)

def cmd_portfree(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", int(port)))
    except OSError:
        return
    finally:
        s.close()
    fail("127.0.0.1:%s is already in use by another process; choose another PORT" % port, 2)

def cmd_wait(d, pid, timeout):
    pid, deadline = int(pid), time.time() + float(timeout)
    cfg = os.path.join(d, "homeserver.yaml")
    state = load(os.path.join(d, "kit-state.json"))
    base = "http://127.0.0.1:%d" % state["port"]
    kid = key_id(d)
    while time.time() < deadline:
        if not alive(pid, cfg):
            fail("synapse (pid %d) exited during startup" % pid)
        try:
            status, _ = http("GET", base + "/_matrix/client/versions", timeout=2)
        except (OSError, ValueError):
            time.sleep(0.25)
            continue
        if status == 200:
            s, keys = http("GET", base + "/_matrix/key/v2/server", timeout=5)
            if s == 200 and kid in keys.get("verify_keys", {}):
                return
            fail("%s answers, but not with the signing key of %s: another server owns that port" % (base, d))
        time.sleep(0.25)
    fail("synapse did not answer %s/_matrix/client/versions within %ss" % (base, timeout))

def cmd_admin(d):
    """Ensure @admin exists (shared-secret registration) and has a token; write RUNNING.json."""
    state_path = os.path.join(d, "kit-state.json")
    state = load(state_path)
    base = "http://127.0.0.1:%d" % state["port"]
    uid = "@admin:%s" % state["server_name"]
    token = state.get("admin_access_token")
    if token:
        s, r = http("GET", base + "/_matrix/client/v3/account/whoami", token=token)
        if not (s == 200 and r.get("user_id") == uid):
            token = None
    if not token:
        s, r = http("GET", base + "/_synapse/admin/v1/register")
        if s != 200 or "nonce" not in r:
            fail("GET /_synapse/admin/v1/register -> %s %s" % (s, r))
        nonce, pw = r["nonce"], state["admin_password"]
        mac = hmac.new(state["registration_shared_secret"].encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), b"admin", pw.encode(), b"admin"]))
        s, r = http("POST", base + "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": "admin", "password": pw, "admin": True,
            "displayname": "admin", "mac": mac.hexdigest()})
        if s != 200 and not (s == 400 and r.get("errcode") == "M_USER_IN_USE"):
            fail("shared-secret registration of %s failed: %s %s" % (uid, s, r))
        s, r = http("POST", base + "/_matrix/client/v3/login", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "admin"},
            "password": pw, "initial_device_display_name": "synapse-start-script"})
        if s != 200:
            fail("login as %s failed: %s %s (admin password in kit-state.json does not match the "
                 "database? use a fresh DIR)" % (uid, s, r))
        token = r["access_token"]
        state["admin_access_token"] = token
        save(state_path, state, 0o600)
    s, r = http("GET", base + "/_synapse/admin/v1/server_version")
    if s != 200:
        fail("GET /_synapse/admin/v1/server_version -> %s %s" % (s, r))
    running_path = os.path.join(d, "RUNNING.json")
    save(running_path, {
        "base_url": base,
        "server_name": state["server_name"],
        "version": r.get("server_version"),
        "registration_shared_secret": state["registration_shared_secret"],
        "admin_user_id": uid,
        "admin_access_token": token,
        "admin_password": state["admin_password"],
        "pid_file": os.path.join(d, "synapse.pid"),
        "log": os.path.join(d, "synapse.log"),
    })
    print("synapse ready: %s (%s)" % (base, running_path))

def cmd_already(d, port_arg):
    """Synapse of DIR is running and RUNNING.json exists: check it answers, print the line."""
    running_path = os.path.join(d, "RUNNING.json")
    run = load(running_path)
    base = run["base_url"]
    port = int(base.rsplit(":", 1)[1])
    if port_arg and int(port_arg) != port:
        fail("synapse already running in %s on port %d (asked for %s); run stop.sh %s first"
             % (d, port, port_arg, d), 2)
    env_name = os.environ.get("SYNAPSE_SERVER_NAME")
    if env_name and env_name != run["server_name"]:
        fail("synapse already running in %s as %s (SYNAPSE_SERVER_NAME=%s)" % (d, run["server_name"], env_name), 2)
    try:
        s, _ = http("GET", base + "/_matrix/client/versions", timeout=5)
    except OSError as e:
        s = e
    if s != 200:
        fail("synapse is running in %s but %s/_matrix/client/versions does not answer (%s)" % (d, base, s))
    print("synapse ready: %s (%s)" % (base, running_path))

def cmd_launch(d, venv):
    import subprocess
    with open(os.path.join(d, "synapse.log"), "ab") as log:
        p = subprocess.Popen(
            [os.path.join(venv, "bin", "python"), "-m", "synapse.app.homeserver",
             "-c", os.path.join(d, "homeserver.yaml"), "-c", os.path.join(d, "conf.d")],
            cwd=d, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            close_fds=True, start_new_session=True)
    p.returncode = 0   # we never wait for it; keep Popen.__del__ quiet
    pid_file = os.path.join(d, "synapse.pid")
    with open(pid_file + ".tmp", "w") as f:
        f.write("%d\n" % p.pid)
    os.replace(pid_file + ".tmp", pid_file)
    print(p.pid)

cmd, args = sys.argv[1], sys.argv[2:]
try:
    {"config": cmd_config, "portfree": cmd_portfree, "launch": cmd_launch, "wait": cmd_wait,
     "admin": cmd_admin, "already": cmd_already}[cmd](*args)
except OSError as e:   # incl. URLError, connection refused/reset, timeouts, file errors
    fail("%s: %s" % (cmd, e))
PYEOF
)
helper() { "$PY" -c "$HELPER" "$@"; }

# PID of DIR's running Synapse (verified via /proc), or return 1.
our_pid() {
  local pid state cmd
  [ -s "$PIDFILE" ] || return 1
  pid=$(head -c 32 -- "$PIDFILE" | tr -dc 0-9)
  [ -n "$pid" ] || return 1
  state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] || return 1
  cmd=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  grep -qxF 'synapse.app.homeserver' <<<"$cmd" && grep -qxF -- "$CFG" <<<"$cmd" || return 1
  echo "$pid"
}

# Stop a Synapse that this invocation started (after a failed start).
stop_started() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do our_pid >/dev/null || break; sleep 0.25; done
  if our_pid >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f -- "$PIDFILE"
}

# (a) venv + Synapse ----------------------------------------------------------------------------
installed_version() {   # version of matrix-synapse installed *inside* the venv, or nothing
  "$VENV/bin/python" - <<'PYEOF' 2>/dev/null || true
import importlib.metadata as m, os, sys
try:
    d = m.distribution("matrix-synapse")
except m.PackageNotFoundError:
    sys.exit(0)
if os.path.realpath(str(d.locate_file(""))).startswith(os.path.realpath(sys.prefix) + os.sep):
    print(d.version)
PYEOF
}

requirements_digest() { "$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS"; }

ensure_venv() {
  [ -n "$PY" ] || die "${SYNAPSE_PYTHON:-python3} not found: install Python 3.10+ or set SYNAPSE_PYTHON"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); Synapse $SYNAPSE_VERSION needs 3.10+ (set SYNAPSE_PYTHON)"
  [ -n "$SYNAPSE_VERSION" ] || die "no matrix-synapse pin found in $REQUIREMENTS"
  local stamp=$VENV/.requirements.sha256 digest
  digest=$(requirements_digest)
  if [ "$(installed_version)" = "$SYNAPSE_VERSION" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
    return 0
  fi
  LOG=$DIR/venv-install.log
  : > "$LOG"
  echo "start.sh: installing Synapse $SYNAPSE_VERSION into $VENV from PyPI (log: $LOG)" >&2
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || die "$PY -m venv $VENV failed (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  "$VENV/bin/python" -m pip install --require-hashes --no-input --disable-pip-version-check \
      -r "$REQUIREMENTS" >>"$LOG" 2>&1 \
    || die "pip install --require-hashes -r $REQUIREMENTS into $VENV failed (no access to PyPI? set PIP_INDEX_URL)"
  [ "$(installed_version)" = "$SYNAPSE_VERSION" ] || die "matrix-synapse $SYNAPSE_VERSION not found in $VENV after pip install"
  echo "$digest" > "$stamp"
}

# ---------------------------------------------------------------------------------------------
STARTED_PID=""
if PID=$(our_pid); then
  if [ -s "$RUNNING" ]; then
    LOG=$SLOG
    helper already "$DIR" "$PORT_ARG" || fail_quiet
    exit 0
  fi
  # Running, but an earlier start.sh did not finish (no RUNNING.json): wait + admin again.
  PORT_RUNNING=$(sed -n 's/^  - port: \([0-9]*\)$/\1/p' "$CFG" | head -n 1)
  if [ -n "$PORT_ARG" ] && [ "$PORT_ARG" != "$PORT_RUNNING" ]; then
    usage_error "synapse already running in $DIR on port $PORT_RUNNING (asked for $PORT_ARG); run stop.sh $DIR first"
  fi
else
  rm -f -- "$PIDFILE" "$RUNNING"
  ensure_venv
  LOG=$SLOG
  PORT=$(helper config "$DIR" "$PORT_ARG") || fail_quiet
  helper portfree "$PORT" || fail_quiet
  echo "=== start.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): Synapse $SYNAPSE_VERSION on 127.0.0.1:$PORT ===" >>"$SLOG"
  # Detached (own session, stdin /dev/null, stdout+stderr appended to synapse.log, every other
  # inherited fd closed -- incl. the DIR lock and any CI pipes). The PID file holds exactly the
  # Synapse process.
  PID=$(helper launch "$DIR" "$VENV") || fail_quiet
  STARTED_PID=$PID
fi

# (d) wait until it answers (and it is really this DIR's Synapse) ------------------------------
LOG=$SLOG
if ! helper wait "$DIR" "$PID" "${SYNAPSE_START_TIMEOUT:-60}"; then
  [ -n "$STARTED_PID" ] && stop_started "$STARTED_PID"
  fail_quiet
fi
# (e) admin user + (f) RUNNING.json + the one line -----------------------------------------------
if ! helper admin "$DIR"; then
  [ -n "$STARTED_PID" ] && stop_started "$STARTED_PID"
  fail_quiet
fi
