"""Stand-in for pip's get-pip.py bootstrap script, used by ansible-test.

ansible-test downloads get-pip.py from a host outside the package registries;
this installs pip from the interpreter's bundled wheel (ensurepip) instead and
then lets that pip install what ansible-test asked for from the package index.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
# get-pip.py's own flags mean "do not add setuptools/wheel": plain pip has no such option.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
