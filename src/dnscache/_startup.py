"""Where :func:`activate` lived in 0.1; kept so that copies of that example keep working.

dnscache 0.1's ``sitecustomize_example/sitecustomize.py`` did
``from dnscache._startup import activate``, and users copied that file into
their images and virtualenvs. The function now lives in
``dnscache._activation.startup``; new code should write
``from dnscache import activate``.
"""

from __future__ import annotations

from ._activation.startup import activate

__all__ = ["activate"]
