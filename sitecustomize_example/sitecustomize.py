"""Turn dnscache on at start-up when PYTHONDNSCACHE is set: the sitecustomize way.

Copy this file into a directory on ``sys.path`` (for example the virtualenv's
site-packages) or merge it into the sitecustomize you already have. It does what
the ``dnscache.pth`` hook shipped in the wheel does; see README.md beside it for
when to use which. Like the hook, it costs one environment lookup when the
variable is unset or off, and it never stops the interpreter from starting.
"""

import os
import sys

if os.environ.get("PYTHONDNSCACHE", "").strip().lower() not in ("", "0", "false", "no", "off") and (
    not sys.flags.ignore_environment  # python -E / -I: PYTHON* variables do not count
):
    try:
        from dnscache import activate
    except Exception:  # dnscache is not installed (or broken) here: stay out of the way
        pass
    else:
        activate()  # never raises; installs at the program's first `import socket`
