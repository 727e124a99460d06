# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""amavis's local quarantine: what is in it, and which message a release names.

The quarantine is written by amavis, so nothing in it is trusted: a file is read
only if it is a regular file reached without following a link, and only its
header block, bounded in size. A message is named by amavis's mail_id (the
X-Quarantine-ID it logs), never by a path.
"""

import os
import re
import stat

# amavis's mail_id: 12 characters of its base64url-like alphabet.
MAIL_ID = re.compile(r"[A-Za-z0-9_+-]{12}")
# <kind>-<mail_id>, as the role's quarantine methods name the files (local:virus-%m).
_FILE = re.compile(r"(?P<kind>virus|banned|spam|unchecked|badh)-(?P<id>[A-Za-z0-9_+-]{12})")
HEADER_LIMIT = 65536
_FIELDS = {
    "x-envelope-from": "sender",
    "x-envelope-to": "recipients",
    "x-amavis-alert": "reason",
    "subject": "subject",
    "date": "date",
}


def check_mail_id(value):
    if not isinstance(value, str) or not MAIL_ID.fullmatch(value):
        raise ValueError("id must be an amavis mail_id (12 letters, digits, '_', '+' or '-'), got %r" % (value,))
    return value


def header_fields(data):
    """The fields of a header block (bytes) this module reports, unfolded, as text."""
    block = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    fields, name = {}, None
    for line in block.split("\n"):
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower() if sep else None
        if name in _FIELDS and name not in fields:
            fields[name] = value.strip()
        elif name not in _FIELDS:
            name = None
    report = {key: fields.get(field, "") for field, key in _FIELDS.items()}
    report["recipients"] = [r.strip(" <>") for r in report["recipients"].split(",") if r.strip(" <>")]
    report["sender"] = report["sender"].strip(" <>")
    return report


def read_headers(path):
    """The header block of a regular file, opened without following a link; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, HEADER_LIMIT)
    finally:
        os.close(fd)


def entries(quarantine_dir):
    """Every quarantined message: {id, kind, file (relative), sender, recipients, subject, date, reason}."""
    found = []
    for sub in sorted(os.listdir(quarantine_dir)):
        subdir = os.path.join(quarantine_dir, sub)
        if not os.path.isdir(subdir) or os.path.islink(subdir):
            continue
        for name in sorted(os.listdir(subdir)):
            match = _FILE.fullmatch(name)
            data = read_headers(os.path.join(subdir, name)) if match else None
            if data is None:
                continue
            entry = {"id": match.group("id"), "kind": match.group("kind"), "file": "%s/%s" % (sub, name)}
            entry.update(header_fields(data))
            found.append(entry)
    return found


def find(quarantine_dir, mail_id):
    """The entry of one message; LookupError when there is none."""
    check_mail_id(mail_id)
    for entry in entries(quarantine_dir):
        if entry["id"] == mail_id:
            return entry
    raise LookupError("no message %s in the quarantine" % mail_id)


def summary_line(entry):
    """One line for an operator: id, kind, date, sender, recipients, subject, reason, release."""
    line = "%s %s %s <%s> -> %s: %s [%s]" % (
        entry["id"],
        entry["kind"],
        entry.get("date", ""),
        entry.get("sender", ""),
        ", ".join("<%s>" % r for r in entry.get("recipients", [])),
        entry.get("subject", ""),
        entry.get("reason", ""),
    )
    released = entry.get("released")
    if released:
        line += " released %s by %s: %s" % (released["at"], released["by"], released["reason"])
    return line
