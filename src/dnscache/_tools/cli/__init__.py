"""The command line: ``dnscache`` / ``python -m dnscache``, one module per command.

Commands, in the order a newcomer meets them:

* ``demo``: the README's first command; the cache at work against an embedded
  loopback DNS server that adds a delay standing in for the network.
* ``lookup``: resolve names the way a program would with the environment's
  configuration, and say where each answer came from.
* ``run``: run a command with the cache switched on through ``PYTHONDNSCACHE``.
* ``cache``: look at, prune or clear the persistent (sqlite) cache.
* ``bench``: hit and miss latencies against the embedded server.
* ``doctor``: is activation installed, what is configured, what is patched, which
  runtimes are covered, and what would bypass ``socket.getaddrinfo`` altogether.
* ``ps``, ``stats``, ``dump``, ``flush``: look into and flush a running process's
  cache through its control endpoint (``PYTHONDNSCACHE_CONTROL=1``).

Shared pieces: :mod:`.options` (the option table, exit statuses, errors),
:mod:`.output` (tables, durations, JSON), :mod:`.common` (the environment's
Config, the cache path), :mod:`.embedded` (the demo's server and timing),
:mod:`.diagnose` (why an upstream failed), :mod:`.endpoint` (the control client)
and :mod:`.runtimes` (doctor's coverage table).
:mod:`.main` builds the parser from the commands and dispatches.
"""
