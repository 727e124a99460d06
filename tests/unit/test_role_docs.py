"""scripts/role_docs.py: a role's spec carries every default of defaults/main.yml, and --check says when not."""

import importlib.util
import pathlib

import pytest
import yaml

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "role_docs.py"
spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
role_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(role_docs)

SPEC = """---
argument_specs:
  main:
    short_description: A role
    options:
      demo_port:
        type: int
        description: A port.
      demo_names:
        type: list
        elements: str
        description: Names.
"""


@pytest.fixture
def role(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "defaults").mkdir()
    (tmp_path / "meta" / "argument_specs.yml").write_text(SPEC)
    (tmp_path / "defaults" / "main.yml").write_text("---\ndemo_port: 25\ndemo_names: ['{{ x }}', b]\n")
    return tmp_path


def test_missing_spec_defaults_are_drift_then_written(role):
    assert len(role_docs.spec_drift(role)) == 2
    role_docs.write_spec_defaults(role)
    assert role_docs.spec_drift(role) == []
    options = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert options["demo_port"]["default"] == 25
    assert options["demo_names"]["default"] == ["{{ x }}", "b"]


def test_a_changed_default_is_drift(role):
    role_docs.write_spec_defaults(role)
    (role / "defaults" / "main.yml").write_text("---\ndemo_port: 587\ndemo_names: ['{{ x }}', b]\n")
    assert role_docs.spec_drift(role) == [
        "%s: the spec's default of demo_port is not the one in defaults/main.yml" % role.name
    ]


def test_a_default_the_spec_does_not_declare_is_drift(role):
    (role / "defaults" / "main.yml").write_text("---\ndemo_port: 25\ndemo_names: []\ndemo_secret: x\n")
    assert "%s: demo_secret is in defaults/main.yml but not in the spec" % role.name in role_docs.spec_drift(role)
