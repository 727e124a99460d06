# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side check of a role's inputs; see modules/validate_inputs.py."""

import os

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    validate_inputs,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("formats", "entry_point", "argument_spec_file"))

    def _spec_file(self):
        given = self._task.args.get("argument_spec_file")
        if given:
            return given
        role = getattr(self._task, "_role", None)
        if role is None:
            raise InputError("argument_spec_file", "required outside a role")
        return os.path.join(role._role_path, "meta", "argument_specs.yml")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        formats = self._task.args.get("formats") or {}
        entry_point = self._task.args.get("entry_point", "main")
        try:
            with open(self._spec_file()) as handle:
                specs = yaml.safe_load(handle)["argument_specs"]
            options = specs[entry_point].get("options") or {}
            values = {name: self._templar.template(task_vars[name]) for name in options if name in task_vars}
            checked = ArgumentSpecValidator(options).validate(values)
            if checked.error_messages:
                raise InputError(entry_point, "; ".join(checked.error_messages))
            validate_inputs(values, formats, declared=options)
        except (InputError, ValueError, KeyError, OSError) as exc:
            result.update(failed=True, msg="invalid input: %s" % exc)
            return result
        result.update(changed=False, validated=sorted(values), msg="inputs valid")
        return result
