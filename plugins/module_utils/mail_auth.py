# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two-factor mail login decisions for mailstack-authd.

Dovecot (IMAP, and SASL for Postfix) hands every login to a Lua script, which
asks mailstack-authd over a unix socket; the daemon decides here. A login is
either the LDAP password followed directly by the current TOTP code (RFC 6238),
or an app password scoped to services and optionally bound to a client
certificate.

Standard library only: this file is copied to the IMAP host and imported there
as `mail_auth`, as well as by the collection's plugins. Python 3.9 syntax.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import string
import struct
import tempfile
import urllib.parse
from dataclasses import dataclass

# The IMAP host may run Python 3.9, which has no datetime.UTC.
UTC = datetime.timezone.utc  # noqa: UP017

TOTP_PERIOD = 30
TOTP_DIGITS = 6
SERVICES = frozenset(("imap", "smtp"))

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CODE = re.compile(r"\A[0-9]{6}\Z")
_LOGIN = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
_EMAIL_LOCAL = re.compile(r"\A[a-z0-9_+-][a-z0-9._+-]{0,63}\Z")
_DNS_LABEL = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_SOURCE = re.compile(r"\A(?:unknown|[0-9.]+|[0-9a-f:]+_(?:64|56|48))\Z")  # what source_buckets returns
# IPv6 prefixes counted beside the /64, with their limits' multiple: one who holds a
# whole /56 or /48 (a tunnel broker hands out /48s) must not rotate /64s for free.
IPV6_COARSE_BUCKETS = ((56, 4), (48, 16))
_GENERALIZED_TIME = re.compile(
    r"\A(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{4})\Z",
)

APP_ID_ALPHABET = string.ascii_lowercase + string.digits
APP_SECRET_ALPHABET = string.ascii_letters + string.digits
APP_PASSWORD_RE = re.compile(r"\A([a-z0-9]{8})-([A-Za-z0-9]{24})\Z")

# Steps a (login, source) keeps as spent: more than any accepted clock skew (at most 3).
SPENT_STEPS_KEPT = 8
# Compare-and-swap attempts on the directory's last step before the login is a tempfail.
CLAIM_ATTEMPTS = 3


class DirectoryUnavailable(Exception):
    """The directory could not answer; the login must be retried, never granted."""


@dataclass(frozen=True)
class UserRecord:
    login: str
    dn: str
    enabled: bool
    totp_secret: str | None = None
    # mailstackTotpLastStep as read at lookup: the step every auth host compares and swaps.
    totp_last_step: int | None = None


# Services whose front end verifies the client certificate against the stack CA
# itself (Dovecot's imap-login). Postfix passes no certificate state to Dovecot, so a
# device-bound app password never works for smtp and cannot be created for it.
CERT_VERIFYING_SERVICES = frozenset({"imap"})


@dataclass(frozen=True)
class AppRecord:
    app_id: str
    dn: str
    scopes: frozenset
    expires: datetime.datetime | None = None  # aware, UTC
    device_bound: bool = False


@dataclass(frozen=True)
class AuthRequest:
    user: str
    password: str
    service: str
    remote_ip: str = ""
    cert_valid: bool = False


@dataclass(frozen=True)
class AuthResult:
    status: str  # "ok", "fail" or "tempfail"
    user: str | None
    reason: str
    app_id: str | None = None


# --- TOTP (RFC 6238 over RFC 4226 HOTP) -------------------------------------


def decode_secret(secret_b32):
    """The key bytes of a base32 secret; case-insensitive, padding optional."""
    if not isinstance(secret_b32, str) or not secret_b32:
        raise ValueError("TOTP secret must be a non-empty base32 string")
    text = secret_b32.upper().rstrip("=")
    text += "=" * (-len(text) % 8)
    try:
        key = base64.b32decode(text)
    except ValueError:  # binascii.Error
        raise ValueError("TOTP secret is not valid base32") from None
    if not key:
        raise ValueError("TOTP secret is empty")
    return key


def _hotp(key, counter, digits):
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return "%0*d" % (digits, value % (10**digits))


def totp(secret_b32, step, digits=TOTP_DIGITS):
    """The code for time step `step` (unix time // 30)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("time step must be a non-negative integer")
    if not 1 <= digits <= 10:
        raise ValueError("digits must be between 1 and 10")
    return _hotp(decode_secret(secret_b32), step, digits)


def _timestamp(now):
    """Unix seconds from a number or an aware datetime (a naive one would silently mean local time)."""
    if isinstance(now, datetime.datetime):
        if now.tzinfo is None:
            raise ValueError("naive datetime; pass an aware UTC time")
        return now.timestamp()
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise ValueError("time must be an aware datetime or unix seconds")
    return float(now)


def time_step(now):
    return int(_timestamp(now) // TOTP_PERIOD)


def verify_totp(secret_b32, code, now, window=1):
    """The time step whose code equals `code` within ±`window` steps of `now`, or None."""
    if not isinstance(code, str) or not _CODE.match(code):
        return None
    key = decode_secret(secret_b32)
    current = time_step(now)
    matched = None
    # Every candidate is compared, so timing does not tell which step matched.
    for step in range(current - window, current + window + 1):
        if step < 0:
            continue
        if hmac.compare_digest(_hotp(key, step, TOTP_DIGITS), code):
            matched = step
    return matched


def otpauth_uri(secret_b32, account, issuer):
    """The otpauth:// URI authenticator apps read from a QR code."""
    decode_secret(secret_b32)
    for name, value in (("account", account), ("issuer", issuer)):
        if not isinstance(value, str) or not value or _CONTROL.search(value) or ":" in value:
            # The label is issuer:account, so a colon in either part would be ambiguous.
            raise ValueError("%s must be a non-empty single-line string without ':'" % name)
    secret = secret_b32.upper().rstrip("=")
    label = "%s:%s" % (urllib.parse.quote(issuer, safe="@"), urllib.parse.quote(account, safe="@"))
    query = urllib.parse.urlencode(
        [
            ("secret", secret),
            ("issuer", issuer),
            ("algorithm", "SHA1"),
            ("digits", TOTP_DIGITS),
            ("period", TOTP_PERIOD),
        ],
        quote_via=urllib.parse.quote,
    )
    return "otpauth://totp/%s?%s" % (label, query)


def new_totp_secret():
    """A random 160-bit secret (the HMAC-SHA1 block recommendation), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


# --- App passwords ----------------------------------------------------------


def parse_app_password(value):
    """The app id of an app password `<id>-<secret>`, or None if it has another shape."""
    if not isinstance(value, str):
        return None
    match = APP_PASSWORD_RE.match(value)
    return match.group(1) if match else None


LOGIN_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_."
LOGIN_PASSWORD_LENGTH = 20


def new_login_password():
    """A random login password: 20 characters of 65 (about 120 bits), safe to type and to quote."""
    return "".join(secrets.choice(LOGIN_PASSWORD_ALPHABET) for _position in range(LOGIN_PASSWORD_LENGTH))


def new_app_password():
    app_id = "".join(secrets.choice(APP_ID_ALPHABET) for _position in range(8))
    secret = "".join(secrets.choice(APP_SECRET_ALPHABET) for _position in range(24))
    return "%s-%s" % (app_id, secret)


# --- Names ------------------------------------------------------------------


def check_login_name(value):
    """A login name or a lower-case mail address; also safe as a file name (no '/', no leading '.')."""
    if not isinstance(value, str):
        raise ValueError("login name must be a string")
    if _LOGIN.match(value):
        return value
    local, sep, domain = value.rpartition("@")
    labels = domain.split(".")
    if (
        sep
        and _EMAIL_LOCAL.match(local)
        and ".." not in local
        and len(labels) >= 2
        and len(domain) <= 253
        and all(_DNS_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    ):
        return value
    raise ValueError("%r is not a valid login name" % (value,))


# --- LDAP entry conversion (the daemon's adapter stays thin) ----------------


def _attrs(entry_attrs):
    """Attribute values as text, keyed by lower-case name (servers may change the case)."""
    result = {}
    for name, values in entry_attrs.items():
        result[name.lower()] = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    return result


def _ldap_bool(values):
    # LDAP Boolean syntax is exactly TRUE or FALSE; anything else counts as false.
    return bool(values) and values[0] == "TRUE"


def parse_generalized_time(value):
    """An aware UTC datetime from LDAP GeneralizedTime (20261231235959Z, optional fraction/offset)."""
    match = _GENERALIZED_TIME.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("%r is not a GeneralizedTime" % (value,))
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    stamp = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    if fraction:
        stamp += datetime.timedelta(seconds=float("0." + fraction))
    if zone == "Z":
        offset = datetime.timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    return (stamp - offset).replace(tzinfo=UTC)


def user_record_from_ldap(dn, entry_attrs):
    """A UserRecord from a search result, or None when the uid is not a usable login name."""
    attrs = _attrs(entry_attrs)
    uids = attrs.get("uid", [])
    if len(uids) != 1:
        return None
    try:
        login = check_login_name(uids[0])
    except ValueError:
        return None
    secrets_ = attrs.get("mailstacktotpsecret", [])
    return UserRecord(
        login=login,
        dn=dn,
        enabled=_ldap_bool(attrs.get("mailstackenabled", [])),
        totp_secret=secrets_[0] if secrets_ else None,
        totp_last_step=_last_step(attrs.get("mailstacktotplaststep", [])),
    )


# Expiry that cannot be read means expired: the entry then refuses logins instead of living forever.
_UNREADABLE_EXPIRY = datetime.datetime(1970, 1, 1, tzinfo=UTC)
# A last step that cannot be read means every step is used: absent would reopen replays.
_UNREADABLE_STEP = 2**62


def _last_step(values):
    if not values:
        return None
    if len(values) != 1 or not re.fullmatch(r"(?:0|[1-9][0-9]{0,17})", values[0]):
        return _UNREADABLE_STEP
    return int(values[0])


def app_record_from_ldap(dn, entry_attrs):
    attrs = _attrs(entry_attrs)
    ids = attrs.get("mailstackappid", [])
    if len(ids) != 1:
        return None
    expires = None
    if attrs.get("mailstackexpires"):
        try:
            expires = parse_generalized_time(attrs["mailstackexpires"][0])
        except ValueError:
            expires = _UNREADABLE_EXPIRY
    return AppRecord(
        app_id=ids[0],
        dn=dn,
        scopes=frozenset(s.lower() for s in attrs.get("mailstackscope", [])) & SERVICES,
        expires=expires,
        device_bound=_ldap_bool(attrs.get("mailstackdevicebound", [])),
    )


# --- Per-user and per-source state -----------------------------------------


def source_bucket(remote_ip):
    """The throttle bucket of a client address: the address, its IPv6 /64, or "unknown".

    A client without a usable address is a bucket of its own, never exempt. One IPv6
    host usually holds a whole /64, so counting single addresses would let it rotate.
    The result is also a safe file name: no '/', no leading '.'.
    """
    try:
        # A scope id (fe80::1%eth0) names an interface, not another client.
        address = ipaddress.ip_address(remote_ip.split("%")[0])
    except (ValueError, AttributeError):
        return "unknown"
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.version == 6:
        return _ipv6_bucket(address, 64)
    return str(address)


def _ipv6_bucket(address, prefix):
    return "%s_%d" % (ipaddress.ip_network("%s/%d" % (address, prefix), strict=False).network_address, prefix)


def source_buckets(remote_ip):
    """Every throttle bucket of a client address with the multiple of the limits it
    allows: the source_bucket first (1), then for IPv6 its /56 (4) and /48 (16)."""
    finest = source_bucket(remote_ip)
    if not finest.endswith("_64"):
        return [(finest, 1)]
    address = ipaddress.ip_address(finest[: -len("_64")])
    return [(finest, 1)] + [(_ipv6_bucket(address, prefix), factor) for prefix, factor in IPV6_COARSE_BUCKETS]


class AuthState:
    """Per login: the last TOTP step this host accepted (a second opinion: the directory's
    mailstackTotpLastStep, which every auth host shares, decides). Per source: recent
    failed logins, each attempt counted before it is evaluated, and the steps spent on a
    failed bind; these stay local, a throttle of each host (docs/threat-model.md).

    One JSON file per login, and one per source bucket under '.sources'. Login
    names never start with '.', so '.sources', the '.<name>.lock' lock files and
    the '.<name>.*.tmp' temporary files cannot collide with a user's file. The lock
    is a separate file because the state file itself is replaced on every write.
    """

    def __init__(self, path):
        self.path = path
        self.sources = os.path.join(path, ".sources")
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.makedirs(self.sources, mode=0o700, exist_ok=True)

    def _locked(self, folder, name):
        return _FileLock(os.path.join(folder, ".%s.lock" % name))

    def _source_lock(self, source):
        # A fixed set of lock files, so sources seen once leave no lock file behind.
        stripe = hashlib.sha256(source.encode("ascii")).hexdigest()[:2]
        return _FileLock(os.path.join(self.sources, ".%s.lock" % stripe))

    def _load(self, folder, name, empty):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return empty
        except ValueError:
            # A corrupt file could hide the last step or the count: refuse to decide.
            raise OSError("corrupt auth state for %s" % name) from None
        if not isinstance(data, dict):
            raise OSError("corrupt auth state for %s" % name)
        return data

    def _write(self, folder, name, data):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % name, suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, os.path.join(folder, name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # Login files: the replay guard.

    def _read_step(self, login):
        step = self._load(self.path, check_login_name(login), {}).get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise OSError("corrupt auth state for %s" % login)
        return step

    def last_step(self, login):
        with self._locked(self.path, check_login_name(login)):
            return self._read_step(login)

    def claim_step(self, login, step):
        """Record `step` as used; False when it is not newer than the last accepted one (replay)."""
        with self._locked(self.path, check_login_name(login)):
            last = self._read_step(login)
            if last is not None and step <= last:
                return False
            self._write(self.path, login, {"step": step})
            return True

    # Source files: the throttle. Failures are unix times, pruned to the window.

    def _read_source(self, source, cutoff):
        data = self._load(self.sources, source, {})
        try:
            failures = [float(t) for t in data.get("failures", []) if float(t) >= cutoff]
            logins = {}
            for login, entry in data.get("logins", {}).items():
                recent = [float(t) for t in entry.get("failures", []) if float(t) >= cutoff]
                # A step is spent only by a failed bind, which is also a recent failure.
                if recent:
                    logins[login] = {"failures": recent, "spent": [int(n) for n in entry.get("spent", [])]}
        except (AttributeError, TypeError, ValueError):
            raise OSError("corrupt auth state for source %s" % source) from None
        return {"failures": failures, "logins": logins}

    def _update_source(self, source, cutoff, change):
        """`change(data)` -> (answer, write) under the source's lock; a source with no recent
        failure keeps no file."""
        if not _SOURCE.match(source):
            raise ValueError("%r is not a source bucket" % (source,))
        with self._source_lock(source):
            data = self._read_source(source, cutoff)
            answer, write = change(data)
            if write and data["failures"]:
                self._write(self.sources, source, data)
            elif write:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.sources, source))
            return answer

    def source_failures(self, source, cutoff):
        return self._update_source(source, cutoff, lambda data: (len(data["failures"]), False))

    def reserve(self, source, login, now, cutoff, login_limit, source_limit):
        """Count one attempt as a failure before it is evaluated; False when a limit is reached.

        Counting first, under the lock, means concurrent attempts cannot all pass the
        check before any of them is recorded. `login` None counts for the source only.
        """
        stamp = _timestamp(now)

        def change(data):
            entry = data["logins"].get(login, {"failures": [], "spent": []}) if login else None
            if len(data["failures"]) >= source_limit or (entry is not None and len(entry["failures"]) >= login_limit):
                return False, False
            data["failures"].append(stamp)
            if entry is not None:
                entry["failures"].append(stamp)
                data["logins"][login] = entry
            return True, True

        return self._update_source(source, cutoff, change)

    def release(self, source, login, now, cutoff, success=False, step=None):
        """Take back a reservation: the attempt turned out not to be a failure. On success
        also forget the login's failures from this source: its owner has just proven herself."""
        stamp = _timestamp(now)

        def change(data):
            with contextlib.suppress(ValueError):
                data["failures"].remove(stamp)
            entry = data["logins"].get(login) if login else None
            if entry is not None:
                with contextlib.suppress(ValueError):
                    entry["failures"].remove(stamp)
                with contextlib.suppress(ValueError):
                    entry["spent"].remove(step)
                if success or not entry["failures"]:
                    del data["logins"][login]
            return None, True

        self._update_source(source, cutoff, change)

    def spend_step(self, source, login, step, cutoff):
        """Allow one bind for `step` per login and source; False when it was spent already."""

        def change(data):
            entry = data["logins"].get(login)
            if entry is None:
                raise OSError("no reservation for %s from %s" % (login, source))
            if step in entry["spent"]:
                return False, False
            entry["spent"] = (entry["spent"] + [step])[-SPENT_STEPS_KEPT:]
            return True, True

        return self._update_source(source, cutoff, change)

    def sweep(self, cutoff):
        """Delete the files of sources with no failure since `cutoff`; the number deleted."""
        removed = 0
        for name in os.listdir(self.sources):
            if name.startswith(".") or not _SOURCE.match(name):
                continue
            with self._source_lock(name):
                try:
                    recent = self._read_source(name, cutoff)["failures"]
                except OSError:
                    continue  # corrupt: left for the next login from that source to report
                if not recent:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.sources, name))
                        removed += 1
        return removed


class _FileLock:
    """An exclusive flock; each open is its own lock, so threads exclude each other too."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock
        self.fd = None


# --- The decision -----------------------------------------------------------


def _fail(reason):
    return AuthResult("fail", None, reason)


class _Attempt:
    """One login attempt's place in the throttle of its source buckets (finest first)."""

    def __init__(self, state, request, now, login_failures, source_failures, throttle_seconds):
        self.state = state
        self.buckets = source_buckets(request.remote_ip)
        self.source = self.buckets[0][0]  # where steps are spent
        self.now = now
        self.cutoff = _timestamp(now) - throttle_seconds
        self.limits = (login_failures, source_failures)
        self.login = None
        self.reserved = []
        self.step = None

    def source_throttled(self):
        failures = self.state.source_failures
        return any(failures(bucket, self.cutoff) >= self.limits[1] * factor for bucket, factor in self.buckets)

    def reserve(self, login):
        """Count the attempt in every bucket, or in none: a bucket at its limit takes back the rest."""
        self.login = login
        for bucket, factor in self.buckets:
            if not self.state.reserve(bucket, login, self.now, self.cutoff, *(limit * factor for limit in self.limits)):
                self.release()
                return False
            self.reserved.append(bucket)
        return True

    def spend(self, step):
        self.step = step
        return self.state.spend_step(self.source, self.login, step, self.cutoff)

    def release(self, success=False):
        while self.reserved:
            bucket = self.reserved.pop()
            step = self.step if bucket == self.source else None
            self.state.release(bucket, self.login, self.now, self.cutoff, success, step)


def authenticate(
    request,
    directory,
    state,
    now,
    window=1,
    login_failures=5,
    source_failures=30,
    throttle_seconds=900,
    services=SERVICES,
):
    """Decide one login; an AuthResult whose status is "ok", "fail" or "tempfail".

    At most `login_failures` failed logins per login and source bucket, and
    `source_failures` per source bucket for all logins, within `throttle_seconds`;
    beyond them the source is refused without evaluating anything. Only the
    `services` this host checks logins for are evaluated.
    """
    attempt = _Attempt(state, request, now, login_failures, source_failures, throttle_seconds)
    try:
        result = _authenticate(request, directory, state, now, window, attempt, services)
        if result.status == "ok":
            attempt.release(success=True)
        return result
    except DirectoryUnavailable:
        with contextlib.suppress(OSError):
            attempt.release()  # an outage is no failed guess
        return AuthResult("tempfail", None, "directory-unavailable")
    except OSError:
        # The state directory decides replay and throttling; without it nothing is granted.
        return AuthResult("tempfail", None, "state-unavailable")


def _authenticate(request, directory, state, now, window, attempt, services):
    fields = (request.user, request.password, request.service, request.remote_ip)
    if not all(isinstance(f, str) for f in fields) or any(_CONTROL.search(f) for f in fields):
        return _fail("bad-input")
    if not request.user or not request.password:
        return _fail("bad-input")
    if request.service not in SERVICES:
        return _fail("bad-service")
    if request.service not in services:
        return _fail("service-not-served")
    # A source over its limit is refused before the directory is asked anything.
    if attempt.source_throttled():
        return _fail("source-throttled")
    try:
        check_login_name(request.user)
    except ValueError:
        attempt.reserve(None)
        return _fail("unknown-user")

    # The lookup (as the service account, counted by no password policy) gives the
    # canonical login, so aliases share one count.
    user = directory.find_user(request.user)
    try:
        login = check_login_name(user.login) if user is not None else request.user
    except ValueError:
        user, login = None, request.user
    # Counted as a failure before anything is evaluated; success takes it back.
    if not attempt.reserve(login):
        return _fail("source-throttled")
    if user is None:
        return _fail("unknown-user")
    if not user.enabled:
        return _fail("disabled")

    app_id = parse_app_password(request.password)
    app = directory.find_app_password(user.login, app_id) if app_id else None
    if app is not None:
        if app.expires is not None and app.expires <= _aware(now):
            return _fail("app-expired")
        if request.service not in app.scopes:
            return _fail("app-scope")
        if app.device_bound and not (request.cert_valid is True and request.service in CERT_VERIFYING_SERVICES):
            return _fail("app-device")
        if not directory.bind(app.dn, request.password):
            return _fail("bad-password")
        return AuthResult("ok", user.login, "app-password", app_id)

    password, code = request.password[:-TOTP_DIGITS], request.password[-TOTP_DIGITS:]
    if not password or not _CODE.match(code):
        return _fail("totp-missing")
    if not user.totp_secret:
        return _fail("totp-not-enrolled")
    try:
        decode_secret(user.totp_secret)
    except ValueError:
        return _fail("totp-secret-invalid")
    # The code first, locally: a wrong or used code never reaches the directory, so
    # slapd's password policy only counts wrong passwords that came with a fresh valid
    # code, which no one without the TOTP secret can produce.
    step = verify_totp(user.totp_secret, code, now, window)
    if step is None:
        return _fail("totp-invalid")
    # The directory's last step is the one every auth host shares; this host's own file
    # is a second opinion (it keeps refusing what this host accepted if the directory's
    # value is ever lost), never the only one. Ahead of every valid code means a clock
    # far ahead on some auth host, or a write by someone holding the dovecot account.
    stored = user.totp_last_step
    if stored is not None and stored > time_step(now) + window:
        return _fail("totp-step-ahead")
    if any(last is not None and step <= last for last in (stored, state.last_step(user.login))):
        return _fail("totp-replayed")
    # One failed bind per code and source: someone who saw a valid code cannot try
    # password after password with it, nor spend it for the user's own address.
    if not attempt.spend(step):
        return _fail("totp-spent")
    if not directory.bind(user.dn, password):
        return _fail("bad-password")
    # Claimed only now: a code sent with a wrong password stays the user's. The directory
    # first: a code is never accepted without being recorded where every host sees it.
    if not claim_directory_step(directory, user, step):
        return _fail("totp-replayed")
    if not state.claim_step(user.login, step):
        return _fail("totp-replayed")
    return AuthResult("ok", user.login, "totp")


def claim_directory_step(directory, user, step):
    """Record `step` as the user's last in the directory; False when it is not newer (replay).

    `directory.claim_step(user, step)` is a compare-and-swap against the step read at
    lookup (an LDAP modify that deletes that value and adds the new one, or only adds
    when there was none): False when another auth host changed it first. Then the step
    is read again: the same or a newer one is a replay; an older one is swapped again.
    DirectoryUnavailable when the write fails or the step keeps changing.
    """
    for _attempt in range(CLAIM_ATTEMPTS):
        last = user.totp_last_step
        if last is not None and step <= last:
            return False
        if directory.claim_step(user, step):
            return True
        fresh = directory.find_user(user.login)
        if fresh is None or fresh.dn != user.dn:
            raise DirectoryUnavailable("%s changed during the login" % user.login)
        user = fresh
    raise DirectoryUnavailable("the last TOTP step of %s keeps changing" % user.login)


def _aware(now):
    if isinstance(now, datetime.datetime):
        if now.tzinfo is None:
            raise ValueError("naive datetime; pass an aware UTC time")
        return now
    return datetime.datetime.fromtimestamp(_timestamp(now), UTC)


# --- Socket protocol --------------------------------------------------------
# One request line, one reply line, UTF-8, fields separated by TAB:
#   AUTH <service> <user> <password> <remote_ip> <"valid" or "">  ->  OK <login> | FAIL <reason> | TEMPFAIL <reason>
#   USER <name>                                                     ->  OK <login> | NOTFOUND | TEMPFAIL <reason>

REPLY_KINDS = ("OK", "FAIL", "TEMPFAIL", "NOTFOUND")


def _strip_newline(line):
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("request is not UTF-8") from None
    if not isinstance(line, str):
        raise ValueError("request must be text")
    return line[:-1] if line.endswith("\n") else line


def parse_request(line):
    """("AUTH", AuthRequest) or ("USER", name); ValueError when malformed."""
    fields = _strip_newline(line).split("\t")
    if any(_CONTROL.search(field) for field in fields):
        raise ValueError("control character in request")
    if fields[0] == "AUTH" and len(fields) == 6:
        service, user, password, remote_ip, cert = fields[1:]
        if cert not in ("valid", ""):
            raise ValueError("certificate field must be 'valid' or empty")
        if remote_ip:
            try:
                ipaddress.ip_address(remote_ip)
            except ValueError:
                raise ValueError("remote address is not an IP address") from None
        return "AUTH", AuthRequest(user, password, service, remote_ip, cert == "valid")
    if fields[0] == "USER" and len(fields) == 2:
        return "USER", fields[1]
    raise ValueError("unknown command or wrong number of fields")


def format_request(command, *fields):
    """The request line (with newline) the Lua script sends; for tests and diagnostics."""
    for field in (command,) + fields:
        if not isinstance(field, str) or _CONTROL.search(field):
            raise ValueError("request fields must be text without control characters")
    return "\t".join((command,) + fields) + "\n"


def format_reply(kind, value=None):
    if kind not in REPLY_KINDS:
        raise ValueError("unknown reply kind %r" % (kind,))
    if kind == "NOTFOUND":
        if value is not None:
            raise ValueError("NOTFOUND carries no value")
        return "NOTFOUND\n"
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise ValueError("reply value must be non-empty text without control characters")
    return "%s\t%s\n" % (kind, value)


def parse_reply(line):
    """(kind, value or None) from a reply line; ValueError when malformed."""
    fields = _strip_newline(line).split("\t")
    if fields == ["NOTFOUND"]:
        return "NOTFOUND", None
    if len(fields) == 2 and fields[0] in REPLY_KINDS[:3] and fields[1] and not _CONTROL.search(fields[1]):
        return fields[0], fields[1]
    raise ValueError("malformed reply")


def format_result(result):
    if result.status == "ok":
        return format_reply("OK", result.user)
    if result.status == "tempfail":
        return format_reply("TEMPFAIL", result.reason)
    return format_reply("FAIL", result.reason)


def lookup_user(name, directory):
    """The USER reply: OK with the canonical login, or NOTFOUND (also for disabled users)."""
    try:
        check_login_name(name)
    except ValueError:
        return format_reply("NOTFOUND")
    try:
        user = directory.find_user(name)
    except DirectoryUnavailable:
        return format_reply("TEMPFAIL", "directory-unavailable")
    if user is None or not user.enabled:
        return format_reply("NOTFOUND")
    try:
        return format_reply("OK", check_login_name(user.login))
    except ValueError:
        return format_reply("NOTFOUND")


def handle_line(line, directory, state, now, log=None, **options):
    """The reply line for one request line; `log` receives the log line of each AUTH.

    `options` are passed to authenticate (window, login_failures, source_failures, throttle_seconds).
    """
    try:
        command, payload = parse_request(line)
    except ValueError:
        return format_reply("FAIL", "bad-request")
    if command == "USER":
        return lookup_user(payload, directory)
    result = authenticate(payload, directory, state, now, **options)
    if log is not None:
        log(log_line(payload, result))
    return format_result(result)


def _log_value(value, limit=128):
    """One space-free printable token, so a crafted user name cannot fake fields for fail2ban."""
    if not isinstance(value, str) or not value:
        return "-"
    text = "".join(c if c.isprintable() and not c.isspace() and c != "=" else "?" for c in value[:limit])
    return text + ("..." if len(value) > limit else "")


def log_line(request, result):
    """One line per login, e.g. `auth result=fail reason=totp-invalid service=imap user=alice rip=192.0.2.7`."""
    parts = [
        "auth",
        "result=%s" % result.status,
        "reason=%s" % _log_value(result.reason),
        "service=%s" % _log_value(request.service, 16),
        "user=%s" % _log_value(request.user),
        "rip=%s" % _log_value(request.remote_ip, 64),
    ]
    if result.status == "ok" and result.user != request.user:
        parts.append("login=%s" % _log_value(result.user))
    if result.app_id:
        parts.append("app=%s" % _log_value(result.app_id, 16))
    return " ".join(parts)
