#!/usr/bin/env bash
# Property-based fuzzing of the whole HTTP API (openapi.yaml) with schemathesis, against the
# gateway in front of the simulated homeserver. docs/fuzzing.md says what it checks and how to
# reproduce a failure.
#
#   scripts/fuzz/run.sh                      # ~2-3 min on 2 cores, random seed (printed)
#   FUZZ_SEED=1234 scripts/fuzz/run.sh       # the same run again
#   FUZZ_MAX_EXAMPLES=1000 scripts/fuzz/run.sh   # longer and deeper
#   scripts/fuzz/run.sh --phases fuzzing --include-path-regex batch   # more schemathesis options
#
# Needs: Linux, Python 3.10+ with venv (Debian: apt-get install python3-venv), Node 20 with the
# project's node_modules (npm ci), and the Python package registry for the first run.
#
# Environment:
#   FUZZ_SEED           seed of the run (default: random, printed at the start and the end)
#   FUZZ_MAX_EXAMPLES   test cases per operation and phase (default 100)
#   FUZZ_TIMEOUT_S      the whole schemathesis run is stopped and fails after this (default 1200)
#   FUZZ_PYTHON         the Python that makes the venv (default python3)
#   FUZZ_VENV           where the venv lives (default .cache/fuzz-venv; rebuilt when
#                       requirements.txt changes)
#   FUZZ_REPORT_DIR     where the HAR file of every exchange goes (default .cache/fuzz-report)
#   FUZZ_IDEMPOTENCY_KEYS=0  send no Idempotency-Key headers (see docs/fuzzing.md, finding F1)
#   FUZZ_HOLD=1         after the run, keep both servers up and print a token, for replaying the
#                       printed curl commands; Ctrl-C stops them
#
# scripts/fuzz/requirements.txt pins schemathesis and its whole dependency closure with hashes.
# Regenerate it after editing requirements.in (uv from the Python package registry, in any venv):
#   pip install uv && cd scripts/fuzz && uv pip compile --universal --python-version 3.10 \
#     --generate-hashes requirements.in -o requirements.txt
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=$root/scripts/fuzz

seed=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
max_examples=${FUZZ_MAX_EXAMPLES:-100}
timeout_s=${FUZZ_TIMEOUT_S:-1200}
python=${FUZZ_PYTHON:-python3}
venv=${FUZZ_VENV:-$root/.cache/fuzz-venv}
report_dir=${FUZZ_REPORT_DIR:-$root/.cache/fuzz-report}
for number in "$seed" "$max_examples" "$timeout_s"; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "FUZZ_SEED, FUZZ_MAX_EXAMPLES and FUZZ_TIMEOUT_S must be whole numbers" >&2; exit 2; }
done
echo "fuzz: seed $seed, $max_examples examples per operation and phase (replay: FUZZ_SEED=$seed FUZZ_MAX_EXAMPLES=$max_examples scripts/fuzz/run.sh)"

# --- the venv, rebuilt when the pinned requirements change -------------------------------------
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || { echo "fuzz: needs Python 3.10 or newer as $python (set FUZZ_PYTHON)" >&2; exit 2; }
[ -d node_modules/tsx ] || { echo "fuzz: run npm ci first (node_modules/tsx is missing)" >&2; exit 2; }
wanted=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$(cat "$venv/.fuzz-requirements" 2>/dev/null)" != "$wanted" ]; then
  started=$SECONDS
  "$python" -m venv --clear "$venv" \
    || { echo "fuzz: cannot make a venv with $python (Debian: apt-get install python3-venv)" >&2; exit 2; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
    -r "$here/requirements.txt"
  echo "$wanted" > "$venv/.fuzz-requirements"
  echo "fuzz: venv ready in $venv in $((SECONDS - started)) s ($("$venv/bin/schemathesis" --version))"
fi

# --- the simulated homeserver and the gateway, on free loopback ports --------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
pids=()
cleanup () {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "fuzz: logs kept in $work" >&2; fi
}
trap 'status=$?; cleanup' EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching REGEX (prints the match) while PID lives, 60 s at most.
wait_for_line () {
  local file=$1 regex=$2 pid=$3 name=$4
  for _ in $(seq 600); do
    if grep -Eo "$regex" "$file" 2>/dev/null | head -n 1 | grep .; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "fuzz: the $name exited:" >&2; tail -n 20 "$file" >&2; return 1; }
    sleep 0.1
  done
  echo "fuzz: the $name did not start within 60 s:" >&2
  tail -n 20 "$file" >&2
  return 1
}

admin_token=syt_fuzz_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
HOMESERVER_PORT=0 HOMESERVER_ADMIN_TOKEN=$admin_token node --import tsx dev/homeserver/main.ts > "$work/homeserver.log" 2>&1 &
pids+=($!)
homeserver_url=$(wait_for_line "$work/homeserver.log" 'http://127\.0\.0\.1:[0-9]+' "${pids[0]}" 'simulated homeserver')

od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$work/jwt_secret"
# Limits out of the way: the fuzzing sends far more than 120 requests a minute with one token.
HOST=127.0.0.1 PORT=0 \
  SYNAPSE_URL=$homeserver_url SYNAPSE_ADMIN_TOKEN=$admin_token SYNAPSE_SERVER_NAME=test.local \
  JWT_SECRET_FILE=$work/jwt_secret ALLOWED_ORGS=example POLICY_FILE=examples/policy.yaml \
  AUDIT_LOG_FILE=$work/audit.jsonl RATE_LIMIT_PER_MINUTE=1000000 RATE_LIMIT_PER_IP_PER_MINUTE=10000000 \
  LOG_LEVEL=info node --import tsx src/server.ts > "$work/gateway.log" 2>&1 &
pids+=($!)
gateway_url=$(wait_for_line "$work/gateway.log" 'Server listening at http://127\.0\.0\.1:[0-9]+' "${pids[1]}" gateway | sed 's/^Server listening at //')
token=$(JWT_SECRET_FILE=$work/jwt_secret node --import tsx dev/sign-token.ts --sub fuzz-caller --roles matrix-admin --org example --ttl 86400)
echo "fuzz: gateway $gateway_url in front of the simulated homeserver $homeserver_url (logs in $work)"

# --- schemathesis -------------------------------------------------------------------------------
mkdir -p "$report_dir"
started=$SECONDS
set +e
# Run from the work directory: schemathesis and Hypothesis leave their state files in the current one.
# One worker: with two, Python 3.11 before 3.11.8 can fail in ast.parse inside Hypothesis
# ("AST constructor recursion depth mismatch"), and the gateway has the CPU to itself anyway.
(cd "$work" && PYTHONPATH=$here PYTHONDONTWRITEBYTECODE=1 timeout --signal=INT --kill-after=30 "$timeout_s" \
  "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$root/openapi.yaml" \
    --url "$gateway_url" --header "Authorization: Bearer $token" \
    --seed "$seed" --max-examples "$max_examples" --workers 1 \
    --report har --report-har-path "$report_dir/exchanges.har" "$@")
status=$?
set -e
elapsed=$((SECONDS - started))

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "fuzz: FAILED: the run took longer than FUZZ_TIMEOUT_S=$timeout_s s (a hang?), seed $seed" >&2
elif [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED after $elapsed s (seed $seed). Each failure above ends with its curl command." >&2
  echo "fuzz: replay the whole run: FUZZ_SEED=$seed FUZZ_MAX_EXAMPLES=$max_examples scripts/fuzz/run.sh" >&2
  echo "fuzz: replay one request by hand: FUZZ_HOLD=1 FUZZ_SEED=$seed scripts/fuzz/run.sh, then the curl command with the printed token" >&2
  if grep -q '"level":50' "$work/gateway.log"; then
    echo "--- the gateway's errors ($work/gateway.log)" >&2
    grep '"level":50' "$work/gateway.log" | tail -n 10 >&2
  fi
else
  echo "fuzz: passed in $elapsed s (seed $seed); every exchange is in $report_dir/exchanges.har"
fi

if [ "${FUZZ_HOLD:-}" = 1 ]; then
  echo "fuzz: holding: gateway $gateway_url, token (valid 24 h):"
  echo "$token"
  echo "fuzz: curl -H \"Authorization: Bearer \$TOKEN\" $gateway_url/v1/me ; Ctrl-C stops both servers"
  wait "${pids[1]}" || true
fi
exit "$status"
