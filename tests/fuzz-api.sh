#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis (PyPI):
# every operation, valid and invalid inputs, stateful sequences; fails on any 5xx.
# Not part of tests/run.sh (minutes, not seconds); run it after changing the API:
#
#   ./tests/fuzz-api.sh [EXAMPLES_PER_OPERATION]      (default 100)
#
# It starts `emr serve` on the embedded store in a temporary directory, with read
# models in a fresh MariaDB database on 127.0.0.1:3306, opens an administrator and
# a physician account, signs both in (password + TOTP) and fuzzes as each.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-100}
say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

python3 -m pip install -q --disable-pip-version-check schemathesis pyotp >/dev/null
cargo build -q --bin emr
emr="$PWD/target/debug/emr"
work=$(mktemp -d)
database="emr_fuzz_$$"
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE $database"
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $database" || true
  rm -rf "$work"
}
trap cleanup EXIT

export EMR__STORE__DATA_DIR="$work/data" EMR__HTTP__LISTEN=127.0.0.1:18080 EMR__GRPC__LISTEN=127.0.0.1:15051
export EMR__READ_MODELS__MYSQL_URL="mysql://root@127.0.0.1:3306/$database" EMR__AUTH__LOGIN_ATTEMPTS_PER_MINUTE=1000000
EMR_ADMIN_PASSWORD='Fuzz-Admin-Password-1' "$emr" accounts create-admin --username fuzz_admin >/dev/null
"$emr" serve >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18080/ready >/dev/null && break; sleep 0.2; done

sign_in() {
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request, pyotp
def post(path, body):
    request = urllib.request.Request("http://127.0.0.1:18080" + path, json.dumps(body).encode(), {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))
challenge = post("/v1/auth/login", {"username": sys.argv[1], "password": sys.argv[2]})
enrolment = post("/v1/auth/mfa/enrolment", {"mfa_token": challenge["mfa_token"]})
tokens = post("/v1/auth/mfa/verification", {"mfa_token": challenge["mfa_token"], "code": pyotp.TOTP(enrolment["secret"]).now()})
print(tokens["access_token"])
PY
}
admin=$(sign_in fuzz_admin 'Fuzz-Admin-Password-1')
curl -sf -X POST http://127.0.0.1:18080/v1/accounts -H "authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"username":"fuzz_doc","password":"Fuzz-Doctor-Password-1","role":"physician",
       "profile":{"full_name":"Fuzz Doctor","licence_number":"LIC-FUZZ","department":"Emergency","specialization":"Trauma"}}' >/dev/null
doctor=$(sign_in fuzz_doc 'Fuzz-Doctor-Password-1')

status=0
for who in admin doctor; do
  say "fuzzing as $who ($examples examples per operation)"
  # Logout would end the session the rest of the run uses.
  st run http://127.0.0.1:18080/openapi.json -H "Authorization: Bearer ${!who}" --checks not_a_server_error \
    --max-examples "$examples" --workers 2 --exclude-path /v1/auth/logout || status=$?
done
exit "$status"
