"""Offline stand-in for the pip bootstrap script that ``ansible-test --venv`` downloads.

ansible-test creates its virtualenvs without pip and then runs a ``get-pip`` script fetched from a
host outside the package registries, which this project's machines cannot reach. It looks in its
cache (``~/.ansible/test/cache/get_pip_<version>.py``) first; scripts/checks/sanity puts this file
there. It takes the same arguments (pip install arguments, plus ``--no-setuptools``/``--no-wheel``),
seeds pip from the ``ensurepip`` wheel that ships with Python, then installs the requested pip
version from the package index.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    # ensurepip points PIP_CONFIG_FILE at /dev/null for its own run; the install below needs the
    # machine's pip configuration (index, certificates) again.
    environ = dict(os.environ)
    ensurepip.bootstrap(upgrade=True)
    return subprocess.call([sys.executable, "-m", "pip", "install", *args], env=environ)


if __name__ == "__main__":
    sys.exit(main())
