# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DKIM key rotation: the state the signing host keeps, and the next step of a rotation.

A rotation of a domain from its active selector to a new one takes three steps, each
in a run of its own, each only once its time has come:

  publish  the new key is made and its record published beside the active one;
  switch   once `propagation` seconds have passed since the publication, the new
           selector signs; the old record stays published;
  retire   once `grace` seconds have passed since the switch, the old record is
           withdrawn and the old key deleted.

A step's clock starts when its run records it, so no run takes more than one step
per domain: the records a run publishes have not propagated by the end of that run.
A run whose step is not due yet (`wait`) or that finds the rotation finished (`done`)
changes nothing.

The state (one JSON document, on the signing host) records per domain the selector
that signs (`active`), the one published and waiting to sign (`new`), the one still
published during the grace period (`old`), when each step happened (`published`,
`switched`, `retired`, UTC) and the selectors retired so far (`history`). It is the
single source of which selectors the opendkim role signs with and publishes:
`opendkim_selector` names only the first one.
"""

import calendar
import json
import re
import time

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_hostname,
    check_label,
)

VERSION = 1
PUBLISH, SWITCH, RETIRE, WAIT, DONE = "publish", "switch", "retire", "wait", "done"
STEPS = (PUBLISH, SWITCH, RETIRE, WAIT, DONE)
# A new selector is one DNS label in lower case: the record is <selector>._domainkey.<domain>
# and the private key <selector>.private, so a dot, a slash or a second line never reach either.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_FIELDS = ("active", "new", "old", "published", "switched", "retired", "history")


class RotationError(ValueError):
    """A rotation that cannot go on as asked (another one is under way, a corrupt state)."""


def check_selector(value, path="selector"):
    """A new selector: one DNS label in lower case (validation.check_label)."""
    return check_label(value, path)


def format_time(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def parse_time(value, path):
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise RotationError("%s: %r is not a UTC time (YYYY-MM-DDThh:mm:ssZ)" % (path, value))
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


def fresh(first_selector):
    """The entry of a domain that never rotated: its first selector signs."""
    return {
        "active": first_selector,
        "new": None,
        "old": None,
        "published": None,
        "switched": None,
        "retired": None,
        "history": [],
    }


def _check_entry(entry, path):
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
        raise RotationError("%s: must hold exactly %s" % (path, ", ".join(_FIELDS)))
    try:
        check_hostname(entry["active"], "%s.active" % path)
        for field in ("new", "old"):
            if entry[field] is not None:
                check_hostname(entry[field], "%s.%s" % (path, field))
        if not isinstance(entry["history"], list):
            raise RotationError("%s.history: must be a list" % path)
        for index, selector in enumerate(entry["history"]):
            check_hostname(selector, "%s.history[%d]" % (path, index))
    except InputError as exc:
        raise RotationError(str(exc)) from None
    for field in ("published", "switched", "retired"):
        if entry[field] is not None:
            parse_time(entry[field], "%s.%s" % (path, field))
    if entry["new"] is not None and (entry["old"] is not None or entry["published"] is None):
        raise RotationError("%s: a new selector waits beside an old one, or has no publication time" % path)
    if entry["old"] is not None and entry["switched"] is None:
        raise RotationError("%s: an old selector without a switch time" % path)
    if len({entry["active"], entry["new"], entry["old"]} - {None}) != 3 - [entry["new"], entry["old"]].count(None):
        raise RotationError("%s: the active, new and old selectors must differ" % path)


def load(text):
    """The state document from its JSON text (None or empty: no rotation yet); checked."""
    if text is None or not text.strip():
        return {"version": VERSION, "domains": {}}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise RotationError("the rotation state is not JSON: %s" % exc) from None
    if (
        not isinstance(document, dict)
        or document.get("version") != VERSION
        or not isinstance(document.get("domains"), dict)
    ):
        raise RotationError("the rotation state must be {version: %d, domains: {...}}" % VERSION)
    for domain, entry in document["domains"].items():
        _check_entry(entry, "domains.%s" % domain)
    return document


def dump(document):
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def entry_of(document, domain, first_selector):
    entry = document["domains"].get(domain)
    return dict(entry, history=list(entry["history"])) if entry else fresh(first_selector)


def next_step(entry, selector, propagation, grace, now):
    """(step, seconds still to wait) for one domain's entry towards `selector`."""
    if entry["new"] is not None:
        if selector != entry["new"]:
            raise RotationError(
                "the rotation to %r (published %s) is under way: finish it first (selector=%s)"
                % (entry["new"], entry["published"], entry["new"])
            )
        left = parse_time(entry["published"], "published") + propagation - now
        return (SWITCH, 0) if left <= 0 else (WAIT, left)
    if entry["old"] is not None:
        if selector != entry["active"]:
            raise RotationError(
                "the old selector %r is still published (grace since %s): finish that rotation first (selector=%s)"
                % (entry["old"], entry["switched"], entry["active"])
            )
        left = parse_time(entry["switched"], "switched") + grace - now
        return (RETIRE, 0) if left <= 0 else (WAIT, left)
    if selector == entry["active"]:
        return DONE, 0
    return PUBLISH, 0


def take(entry, step, selector, now):
    """The entry after `step` (publish, switch, retire) taken at `now`; wait and done change nothing."""
    entry = dict(entry, history=list(entry["history"]))
    stamp = format_time(now)
    if step == PUBLISH:
        if entry["new"] is not None or entry["old"] is not None or selector == entry["active"]:
            raise RotationError("cannot publish %r: the state moved on since the plan" % selector)
        entry.update(new=selector, published=stamp, switched=None, retired=None)
    elif step == SWITCH:
        if entry["new"] != selector:
            raise RotationError("cannot switch to %r: it is not the selector waiting" % selector)
        entry.update(old=entry["active"], active=selector, new=None, switched=stamp)
    elif step == RETIRE:
        if entry["old"] is None or entry["active"] != selector:
            raise RotationError("cannot retire: no old selector is published beside %r" % selector)
        # In the order retired: a selector retired again moves to the end.
        entry["history"] = [s for s in entry["history"] if s != entry["old"]] + [entry["old"]]
        entry.update(old=None, retired=stamp)
    elif step not in (WAIT, DONE):
        raise RotationError("unknown step %r (one of %s)" % (step, ", ".join(STEPS)))
    return entry


def plan(document, domains, first_selector, selector, propagation, grace, now):
    """(steps, waits, planned document): the step due for each domain, and the state after it.

    Without a selector nothing is planned (every step `done`): the state as it is."""
    steps, waits = {}, {}
    planned = {"version": VERSION, "domains": dict(document["domains"])}
    for domain in domains:
        entry = entry_of(document, domain, first_selector)
        if selector is None:
            step, left = DONE, 0
        else:
            try:
                step, left = next_step(entry, selector, propagation, grace, now)
            except RotationError as exc:
                raise RotationError("%s: %s" % (domain, exc)) from None
        steps[domain], waits[domain] = step, left
        if step not in (WAIT, DONE):
            planned["domains"][domain] = take(entry, step, selector, now)
    return steps, waits, planned


def advance(document, domains, first_selector, selector, steps, now):
    """The document after the planned `steps` (taken at `now`, when they are done)."""
    advanced = {"version": VERSION, "domains": dict(document["domains"])}
    for domain in domains:
        step = steps.get(domain, DONE)
        if step in (WAIT, DONE):
            continue
        try:
            advanced["domains"][domain] = take(entry_of(document, domain, first_selector), step, selector, now)
        except RotationError as exc:
            raise RotationError("%s: %s" % (domain, exc)) from None
    return advanced


def keys(selected, kind):
    """[{domain, selector}] of every selector of `kind` (publish or retired) in selectors()."""
    return [{"domain": domain, "selector": s} for domain, chosen in selected.items() for s in chosen[kind]]


def selectors(document, domains, first_selector):
    """{domain: {sign, publish, retired}} of a state document: the one selector that signs,
    those whose records are published (and whose keys are kept), those retired."""
    result = {}
    for domain in domains:
        entry = entry_of(document, domain, first_selector)
        publish = [s for s in (entry["active"], entry["new"], entry["old"]) if s is not None]
        retired = [s for s in entry["history"] if s not in publish]
        result[domain] = {"sign": entry["active"], "publish": publish, "retired": retired}
    return result


def report(document, domains, first_selector, steps, waits, now):
    """One line per domain an operator reads: the selectors, the times, the step of this run."""
    lines = []
    for domain in domains:
        entry = entry_of(document, domain, first_selector)
        parts = ["%s: signs with %s" % (domain, entry["active"])]
        if entry["new"]:
            parts.append("%s published %s, waiting to sign" % (entry["new"], entry["published"]))
        if entry["old"]:
            parts.append("%s still published (switched %s)" % (entry["old"], entry["switched"]))
        if entry["retired"]:
            parts.append("last retired %s" % entry["retired"])
        if entry["history"]:
            parts.append("retired selectors: %s" % ", ".join(entry["history"]))
        step = steps.get(domain, DONE)
        if step == WAIT:
            due = SWITCH if entry["new"] else RETIRE
            parts.append("this run: wait, %s due in %ds (%s)" % (due, waits[domain], format_time(now + waits[domain])))
        else:
            parts.append("this run: %s" % step)
        lines.append("; ".join(parts))
    return lines
