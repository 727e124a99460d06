# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last steps every file-writing module of this collection shares: an atomic write
of a checked candidate, then the usual owner/group/mode handling."""

import os
import tempfile


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
