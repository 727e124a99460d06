# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What playbooks/user_enroll.yml and user_revoke.yml decide, as pure functions.

The playbooks pass the operator's -e variables, the directory entry and the
controller's old credentials document in; these functions check the request,
decide what to issue or revoke, and assemble the credentials document and the
log line. The LDAP writes, the files and the logger call stay tasks.

Every refusal is an InputError whose `path` names the option and whose message
says it in the operator's words; no message carries a secret.
"""

import datetime
import json
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth
from ansible_collections.zerotrust.mailstack.plugins.module_utils.directory import mail_users
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError, check_login

UTC = datetime.timezone.utc  # noqa: UP017
NOTHING_CHANGED = "; nothing was changed"
SCOPES = ("imap", "smtp")
DEFAULT_DAYS = 365
# fullmatch: `$` also matches before a trailing newline.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_APP_ID = re.compile(r"[a-z0-9]{8}")
_DAYS = re.compile(r"[0-9]{1,5}")
_BOOLS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}

ENROLL_OPTIONS = (
    "user",
    "new_password",
    "new_totp",
    "app_name",
    "app_scopes",
    "app_days",
    "app_device_bound",
    "device_cert",
    "reinstate",
)
REVOKE_OPTIONS = ("user", "app", "device", "all")


class RequestError(InputError):
    """A refused request; the message names the option itself (`app_scopes must be ...`)."""

    def __init__(self, path, message):
        super().__init__(path, message)
        self.args = (message,)


def _shown(value):
    """A value as the operator typed it, quoted, control characters escaped."""
    return json.dumps("nothing" if value is None else value, default=repr)


def _check_known(raw, known):
    unknown = sorted(set(raw) - set(known), key=str)
    if unknown:
        raise RequestError(
            str(unknown[0]), "unknown option %s (known: %s)%s" % (_shown(unknown[0]), ", ".join(known), NOTHING_CHANGED)
        )


def parse_bool(value, name, default=False):
    """true/false, yes/no, on/off, 1/0 (any case) or a boolean; None is `default`."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    raise RequestError(name, "%s must be true or false%s" % (name, NOTHING_CHANGED))


def check_user(value):
    """The login named by -e user, or a refusal quoting what was given."""
    try:
        return check_login(value, "user")
    except InputError:
        raise RequestError(
            "user",
            "user must be the login of a mail user (lower-case letters, digits, '.', '_', '-', no control "
            "characters); got %s" % _shown(value),
        ) from None


def _check_name(value, name, message):
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise RequestError(name, message + NOTHING_CHANGED)
    return value


def parse_scopes(value, device_bound):
    """app_scopes as a list or comma-separated; default imap+smtp (imap alone when device bound)."""
    if value is None:
        return ["imap"] if device_bound else ["imap", "smtp"]
    if isinstance(value, str):
        # Spaces only: a newline is refused, not trimmed away.
        value = [part.strip(" ") for part in value.split(",")]
    if not isinstance(value, list) or not value or any(not isinstance(s, str) or s not in SCOPES for s in value):
        raise RequestError("app_scopes", "app_scopes must be a non-empty list of imap and smtp" + NOTHING_CHANGED)
    return list(dict.fromkeys(value))


def parse_days(value):
    """app_days: a whole number of days, 0 to 99999 (0 issues one that has already expired)."""
    if value is None:
        return DEFAULT_DAYS
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _DAYS.fullmatch(value):
        raise RequestError("app_days", "app_days must be a whole number of days (0 to 99999)" + NOTHING_CHANGED)
    return int(value)


def enroll_request(raw, users):
    """Check user_enroll.yml's -e variables (None: not given) against `mailstack_users`.

    Returns the normalised request; raises RequestError before anything is read or changed.
    """
    _check_known(raw, ENROLL_OPTIONS)
    user = check_user(raw.get("user"))
    found = [entry for entry in mail_users(users) if entry["login"] == user]
    if not found or not found[0]["enabled"]:
        raise RequestError("user", "%s is not an enabled user of mailstack_users%s" % (user, NOTHING_CHANGED))
    new_password = raw.get("new_password")
    new_totp = raw.get("new_totp")
    request = {
        "user": user,
        "mail": found[0]["mail"],
        # None: issue one only when the user has none yet.
        "new_password": None if new_password is None else parse_bool(new_password, "new_password"),
        "new_totp": None if new_totp is None else parse_bool(new_totp, "new_totp"),
        "app_device_bound": parse_bool(raw.get("app_device_bound"), "app_device_bound"),
        "device_cert": parse_bool(raw.get("device_cert"), "device_cert"),
    }
    app_name = raw.get("app_name")
    if app_name is not None:
        _check_name(
            app_name, "app_name", "app_name must be 1 to 32 of a-z, 0-9, '_', '-' (starting with a letter or digit)"
        )
    request["app_name"] = app_name
    scopes = parse_scopes(raw.get("app_scopes"), request["app_device_bound"])
    # Only Dovecot's TLS front end verifies client certificates: Postfix passes none to the login check.
    if request["app_device_bound"] and "smtp" in scopes:
        raise RequestError(
            "app_scopes",
            "a device-bound app password cannot be scoped to smtp: Postfix passes no client certificate "
            "to the login check, so it could never be used; drop smtp from app_scopes or app_device_bound"
            + NOTHING_CHANGED,
        )
    request["app_scopes"] = scopes
    request["app_days"] = parse_days(raw.get("app_days"))
    if app_name is None and (request["app_device_bound"] or request["device_cert"]):
        raise RequestError("app_name", "app_device_bound and device_cert need app_name" + NOTHING_CHANGED)
    request["reinstate"] = parse_bool(raw.get("reinstate"), "reinstate")
    return request


def _ldap_true(value):
    values = value if isinstance(value, list) else [value]
    return "TRUE" in values


def expiry(now, days):
    """LDAP generalized time `days` after `now` (whole seconds, UTC)."""
    moment = datetime.datetime.fromtimestamp(int(now.timestamp()) + days * 86400, UTC)
    return moment.strftime("%Y%m%d%H%M%SZ")


def _app_ids(apps):
    return [app["mailstackAppId"] for app in apps if isinstance(app, dict) and "mailstackAppId" in app]


def enroll_plan(request, entries, apps, dn, now, search_error=""):
    """What to issue, from the request and the directory's view of the user.

    `entries` is the base search of the user's entry (one result, or none when the
    directory does not hold the user), `apps` the onelevel search of its app passwords
    (None when that search failed: the credentials file would otherwise lose every
    app password it lists). A revoked user is refused unless reinstated, and then gets
    a new password and TOTP secret.
    """
    if len(entries) != 1:
        raise RequestError("user", "%s is not in the directory (run playbooks/site.yml first): %s" % (dn, search_error))
    if apps is None:
        raise RequestError("user", "cannot read the app passwords of %s: %s" % (dn, search_error))
    entry = entries[0]
    revoked = _ldap_true(entry.get("mailstackRevoked", "FALSE"))
    if revoked and not request["reinstate"]:
        raise RequestError(
            "reinstate",
            "%s was revoked; enroll it again with -e reinstate=true (new password and TOTP secret)" % request["user"],
        )

    def wanted(asked, attribute):
        # A reinstated user gets new secrets: the old ones may be what was stolen.
        return revoked or (asked if asked is not None else attribute not in entry)

    app = request["app_name"] is not None
    plan = {
        "action": "enroll",
        "user": request["user"],
        "mail": request["mail"],
        "reinstate": revoked,
        "password": wanted(request["new_password"], "userPassword"),
        "totp": wanted(request["new_totp"], "mailstackTotpSecret"),
        "app": app,
        "device_cert": request["device_cert"],
        "app_name": request["app_name"],
        "app_scopes": request["app_scopes"],
        "app_device_bound": request["app_device_bound"],
        "app_expires": expiry(now, request["app_days"]),
        "held_apps": _app_ids(apps),
        "pki_device": None,
    }
    if request["device_cert"]:
        device = {"name": "%s-%s" % (request["user"], request["app_name"]), "user": request["mail"]}
        if request["app_days"] > 0:
            device["days"] = request["app_days"]
        plan["pki_device"] = device
    plan["changes"] = [
        change
        for change, do in (
            ("password", plan["password"]),
            ("totp", plan["totp"]),
            ("app", app),
            ("device-cert", plan["device_cert"]),
        )
        if do
    ]
    return plan


def new_secrets(plan):
    """The secrets the plan asks for, from mail_auth's cryptographic generators."""
    app_password = mail_auth.new_app_password() if plan["app"] else None
    return {
        "password": mail_auth.new_login_password() if plan["password"] else None,
        "totp_secret": mail_auth.new_totp_secret() if plan["totp"] else None,
        "app_password": app_password,
        "app_id": mail_auth.parse_app_password(app_password) if app_password else None,
    }


def _old_apps(old):
    apps = old.get("app_passwords") if isinstance(old, dict) else None
    return apps if isinstance(apps, dict) else {}


def enroll_credentials(plan, old, fresh, domain):
    """The user's credentials document after the enrollment.

    `old` is the controller's previous document ({} when there is none), `fresh` what
    new_secrets made. A new password or TOTP secret replaces the old one; of the old
    app passwords only those the directory still holds stay (the controller's copy may
    be older than a rebuilt directory); the new app password is added.
    """
    old = old if isinstance(old, dict) else {}
    password = fresh["password"] if plan["password"] else old.get("password")
    totp_secret = fresh["totp_secret"] if plan["totp"] else old.get("totp_secret")
    apps = {key: value for key, value in _old_apps(old).items() if key in plan["held_apps"]}
    if plan["app"]:
        apps[fresh["app_id"]] = {
            "secret": fresh["app_password"],
            "name": plan["app_name"],
            "scopes": plan["app_scopes"],
            "expires": plan["app_expires"],
            "device_bound": plan["app_device_bound"],
        }
    return {
        "login": plan["user"],
        "mail": plan["mail"],
        "password": password,
        "totp_secret": totp_secret,
        "otpauth_uri": mail_auth.otpauth_uri(totp_secret, plan["mail"], domain) if totp_secret else None,
        "app_passwords": apps,
    }


def enroll_log_fields(plan, app_id):
    """The fields of the enrollment's log line: what changed, never a secret."""
    app = plan["app"]
    return [
        "enroll",
        "user=%s" % plan["user"],
        "changed=%s" % ",".join(plan["changes"]),
        "app=%s" % (app_id if app else "-"),
        "device=%s" % (plan["app_name"] or "-"),
        "scopes=%s" % (",".join(plan["app_scopes"]) if app else "-"),
        "device_bound=%s" % (str(plan["app_device_bound"]).lower() if app else "-"),
    ]


def revoke_request(raw):
    """Check user_revoke.yml's -e variables (None: not given): exactly one of app, device, all=true."""
    _check_known(raw, REVOKE_OPTIONS)
    user = check_user(raw.get("user"))
    everything = parse_bool(raw.get("all"), "all")
    app, device = raw.get("app"), raw.get("device")
    if [app is not None, device is not None, everything].count(True) != 1:
        raise RequestError(
            "app",
            "name exactly one thing to revoke: app=<8-character app id>, device=<device name> or all=true"
            + NOTHING_CHANGED,
        )
    if app is not None and (not isinstance(app, str) or not _APP_ID.fullmatch(app)):
        # Never echoed: an operator may have pasted the whole app password.
        message = "app must be an 8-character app id (a-z, 0-9), the part of the app password before its '-'"
        raise RequestError("app", message + NOTHING_CHANGED)
    if device is not None:
        _check_name(
            device, "device", "device must be a device name, 1 to 32 of a-z, 0-9, '_', '-'; got %s" % _shown(device)
        )
    what = "all" if everything else ("app" if app is not None else "device")
    return {"user": user, "what": what, "app": app, "device": device}


def device_certificate(devices_dir, user, device):
    """Where role pki keeps the device certificate <user>-<device> on the controller."""
    return "%s/%s-%s.pem" % (devices_dir, user, device)


def revoke_plan(request, apps, dn, devices_dir, cert_exists, search_error=""):
    """The app passwords (and device certificate) to revoke.

    `apps` is the onelevel search of the user's app passwords, None when the search
    failed (the directory does not hold the user); `cert_exists` whether
    <devices_dir>/<user>-<device>.pem is a file.
    """
    if apps is None:
        raise RequestError("user", "%s is not in the directory: %s" % (dn, search_error))
    user, what = request["user"], request["what"]
    apps = [app for app in apps if isinstance(app, dict)]
    if what == "all":
        targets = apps
    elif what == "app":
        targets = [app for app in apps if app.get("mailstackAppId") == request["app"]]
    else:
        targets = [app for app in apps if app.get("mailstackDevice") == request["device"]]
    cert = device_certificate(devices_dir, user, request["device"]) if what == "device" else ""
    if what != "all" and not targets and not (what == "device" and cert_exists):
        missing = (
            "no app password %s" % request["app"]
            if what == "app"
            else "no app password and no certificate for the device %s" % request["device"]
        )
        raise RequestError(what, "%s has %s%s" % (user, missing, NOTHING_CHANGED))
    ids = _app_ids(targets)
    return {
        "action": "revoke",
        "user": user,
        "what": what,
        "all": what == "all",
        "device": request["device"],
        "targets": [{"dn": app["dn"], "id": app.get("mailstackAppId")} for app in targets],
        "ids": ids,
        "cert": cert,
        "log_fields": [
            "revoke",
            "user=%s" % user,
            "what=%s" % what,
            "apps=%s" % (",".join(ids) or "-"),
            "device=%s" % (request["device"] or "-"),
        ],
    }


def revoke_credentials(plan, old):
    """The credentials document without what was revoked (None: there is no document)."""
    if not isinstance(old, dict):
        return None
    document = dict(old)
    document["app_passwords"] = {key: value for key, value in _old_apps(old).items() if key not in plan["ids"]}
    if plan["all"]:
        document.update(password=None, totp_secret=None, otpauth_uri=None)
    return document
