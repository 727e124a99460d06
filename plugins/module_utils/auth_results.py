# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Authentication-Results header of ours per message (RFC 8601).

OpenDKIM and OpenDMARC each add a header of the mx's authserv-id (dkim=; spf= and
dmarc=). A reader (a mail client, a filter rule) that takes the first header of an id
as the whole verdict would see one result and miss the others. `merge()` joins the
results of every header of our id into one; the inbound milter, which runs after both
checkers, replaces them with it. Headers of other ids are not ours to touch.

Standard library only: the daemon imports this file as it is on the mail host.
"""

import re

_FOLD = re.compile(r"\r?\n[ \t]+")


def split_top_level(value):
    """The parts of a header value between semicolons outside comments and quoted strings."""
    parts, current, depth, quoted, escaped = [], [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"' and not depth:
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == ";" and not depth:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse(value):
    """(authserv-id, [result, ...]) of one header value; a header saying "none" has no results."""
    first, *results = split_top_level(_FOLD.sub(" ", value))
    # The id may carry comments and a version ("mx.example 1"): the id is the first word.
    words = re.sub(r"\([^()]*\)", " ", first).split()
    authserv_id = words[0] if words else ""
    results = [" ".join(result.split()) for result in results]
    return authserv_id, [result for result in results if result and result.lower() != "none"]


def merge(values, authserv_id):
    """The one header value holding every result the headers of `authserv_id` among `values`
    give, in their order and without repeats; None if fewer than two headers are ours."""
    ours = [parse(values[index - 1])[1] for index in our_indexes(values, authserv_id)]
    if len(ours) < 2:
        return None
    results = []
    for result in (result for found in ours for result in found):
        if result not in results:
            results.append(result)
    return ";\n\t".join([authserv_id] + (results or ["none"]))


def our_indexes(values, authserv_id):
    """1-based positions, among `values` (every Authentication-Results header of the message
    in order), of the headers of `authserv_id`: what a milter names to delete them."""
    return [index for index, value in enumerate(values, 1) if parse(value)[0].lower() == authserv_id.lower()]
