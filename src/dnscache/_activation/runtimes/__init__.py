"""Adapters for the runtimes that do not resolve through ``socket.getaddrinfo`` on their own.

One module per runtime, each a set of factories for ``targets.TARGETS``
(``factory(resolver) -> replacement``), imported only when the runtime itself
is (a post-import hook runs the factory):

* ``uvloop_loop``: ``uvloop.Loop.getaddrinfo`` and ``create_connection``, which
  resolve in C through libuv and so never reach ``socket.getaddrinfo``;
* ``trio_resolver``: trio's hostname-resolver slot, so that a cached name is
  answered without trio's worker-thread hop;
* ``green``: gevent's and eventlet's monkey-patching, after which dnscache puts
  its cache back on top of their cooperative resolvers.

Every replacement follows issue 10's rule, as ``adapters.py`` does: it uses the
cache only while ``socket.getaddrinfo`` is the cache's own function; otherwise
it does exactly what the runtime would have done without dnscache.
"""
