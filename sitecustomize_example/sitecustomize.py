"""Turn dnscache on at start-up when PYTHONDNSCACHE is set: the sitecustomize way.

Copy this file into a directory on ``sys.path`` (for example the virtualenv's
site-packages) or merge it into the sitecustomize you already have. It does what
the ``dnscache.pth`` hook shipped in the wheel does; see README.md beside it for
when to use which.
"""

import os

if os.environ.get("PYTHONDNSCACHE"):
    try:
        from dnscache._activation.startup import activate
    except ImportError:  # dnscache is not installed in this interpreter: stay out of the way
        pass
    else:
        activate()
