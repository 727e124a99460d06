#!/usr/bin/env bash
# `make demo` / `make down`: the segmented stack as local Podman containers.
#   scripts/demo.sh up     build images, create containers, converge, smoke-check
#   scripts/demo.sh down   remove containers, volumes and network
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILSTACK_STACK=local ANSIBLE_CONFIG="$PWD/ansible.cfg"
state=".state/local"
playbook() { .venv/bin/ansible-playbook -i inventories/local/hosts.yml "$@"; }
# `stack container mx`, `stack fqdn mx`: a group's host's container and the name the stack
# publishes for it, as inventories/local names them (read by the stack tests' conftest).
stack() {
  .venv/bin/python -c 'import sys; sys.path.insert(0, "tests/stack"); import conftest
print(getattr(conftest, sys.argv[1])(sys.argv[2]))' "$@"
}

case "${1:-up}" in
  down)
    playbook molecule/resources/stack.yml -e stack_state=absent
    exit 0 ;;
  up) ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

scripts/bootstrap-host.sh
make --no-print-directory link
start=$(date +%s)
playbook molecule/resources/stack.yml -e stack_state=present
mkdir -p "$state"
playbook molecule/default/converge.yml | tee "$state/converge.log"
converged=$(date +%s)

# Smoke check: the outside peer resolves the stack through its signed zone
# and reaches mx over TLS with a certificate from the stack CA.
ext=$(stack container ext) mx=$(stack container mx) mx_name=$(stack fqdn mx) imap_name=$(stack fqdn imap)
podman cp "$state/dns/trust-anchors.conf" "$ext:/tmp/trust-anchors.conf"
dns_ip=$(podman exec "$(stack container dns)" hostname -I | awk '{print $1}')
podman exec "$ext" delv -a /tmp/trust-anchors.conf +root=corp.example "@$dns_ip" "$mx_name" | grep -q "fully validated"
echo "smoke: $mx_name resolves with a validated DNSSEC chain"
# CRLF and pauses: the MX refuses bare LF and commands sent ahead of its replies.
reply=$( (printf 'EHLO smoke.example\r\n'; sleep 2; printf 'QUIT\r\n'; sleep 1) |
  timeout 15 openssl s_client -quiet -connect 127.0.0.1:2525 -starttls smtp \
    -verify_return_error -verify_hostname "$mx_name" -CAfile "$state/ca.pem" 2>/dev/null || true)
grep -q "^250" <<<"$reply"
echo "smoke: 127.0.0.1:2525 speaks SMTP with STARTTLS and a certificate for $mx_name from the stack CA"

# The demo user is enrolled the way an operator enrols anyone: password, TOTP
# secret and an app password for a mail client unless it still has one. The first
# run reconciles the controller's copy with the directory (which may be new).
playbook playbooks/user_enroll.yml -e user=demo >/dev/null
if [ -z "$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["app_passwords"] or "")' \
      "$state/credentials/demo.json" 2>/dev/null)" ]; then
  playbook playbooks/user_enroll.yml -e user=demo -e app_name=demo-client >/dev/null
fi
.venv/bin/python - "$state" "$imap_name" "$mx_name" <<'PY'
import imaplib, json, os, pathlib, ssl, sys
state = pathlib.Path(sys.argv[1]).resolve()
imap_name, mx_name = sys.argv[2:4]
demo = json.loads((state / "credentials" / "demo.json").read_text())
app = next(iter(demo["app_passwords"].values()))
summary = {
    "domain": "corp.example", "login": demo["login"], "address": demo["mail"],
    "password": demo["password"], "totp_secret": demo["totp_secret"], "otpauth_uri": demo["otpauth_uri"],
    "app_password": app["secret"], "app_password_scopes": app["scopes"],
    "imap": "127.0.0.1:9993 (TLS, name %s)" % imap_name,
    "submission": "127.0.0.1:5587 (STARTTLS) and 127.0.0.1:4465 (TLS), name %s" % mx_name,
    "ca": str(state / "ca.pem"),
}
# Created 0600 (and made 0600 if an older run left it wider): never readable by others.
path = state / "credentials.json"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
os.fchmod(fd, 0o600)
with os.fdopen(fd, "w") as handle:
    handle.write(json.dumps(summary, indent=2) + "\n")
# Smoke check: the app password opens the INBOX over the published IMAP port.
context = ssl.create_default_context(cafile=str(state / "ca.pem"))
class Imap(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(imaplib.IMAP4._create_socket(self, timeout), server_hostname=imap_name)
client = Imap("127.0.0.1", 9993, ssl_context=context, timeout=30)
client.login("demo", app["secret"])
assert client.select("INBOX")[0] == "OK"
client.logout()
PY
echo "smoke: 127.0.0.1:9993 logs the demo user in with its app password (IMAP over TLS, $imap_name)"

cat <<TXT

zerotrust.mailstack demo stack is up (converged in $((converged - start))s).
  containers  $(podman ps --filter label=zerotrust.mailstack.stack=local --format '{{.Names}}' | tr '\n' ' ')
  name server $dns_ip  (zones corp.example, outside.example; DNSSEC-signed)
  stack CA    $state/ca.pem
  DNS export  $state/dns/  (zone records, DS sets, trust anchors to publish)
  credentials $state/credentials.json  (demo user: password + TOTP, app password)
  published   127.0.0.1:2525 -> mx:25, :5587 -> mx:587, :4465 -> mx:465, :9993 -> imap:993
  shell       podman exec -it $mx bash
  converge    MAILSTACK_STACK=local .venv/bin/ansible-playbook molecule/default/converge.yml
  remove      make down
TXT
