# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last steps every file-writing module of this collection shares: an atomic write
of a checked candidate, then the usual owner/group/mode handling."""

import errno
import os
import stat
import tempfile


class UnsafeTarget(Exception):
    """The destination is a link or not a regular file: it is neither followed nor replaced."""


def read_existing(path, binary=False):
    """The destination's current content, or None when there is none.

    Opened without following a link and refused unless it is a regular file: the
    directory may belong to a daemon that swapped the file for a link to something only
    root may read, which the module would otherwise show in its diff and then replace.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeTarget("%s is a symbolic link: refusing to follow or replace it" % path) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UnsafeTarget("%s is not a regular file: refusing to read or replace it" % path)
        data = handle.read()
    return data if binary else data.decode("utf-8")


def write_atomically(module, path, text, check=None):
    """Write `text` beside `path` and move it in; `check(tmp)` may refuse it first.

    `check` returns None to accept the candidate, or a dict of fail_json arguments
    (msg and details) to fail the module with the candidate removed and the live
    file untouched.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".%s-" % os.path.basename(path))
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    refusal = check(tmp) if check else None
    if refusal:
        os.unlink(tmp)
        module.fail_json(**refusal)
    module.atomic_move(tmp, path)


def exit_with_file_attributes(module, path, result):
    """Apply owner, group and mode to `path` (when it exists) and exit with `result`."""
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(module.params)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)
