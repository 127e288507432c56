"""The booking service: the durable ledger under the online engine, its HTTP API and operator page.

:mod:`~slotalloc.service.ledger` commits every accepted operation of
:class:`slotalloc.online.Allocator` to an append-only SQLite ledger;
:mod:`~slotalloc.service.server` puts an authenticated FastAPI app in front of
it (the ``server`` extra), with :mod:`~slotalloc.service.auth` and the
operator page of :mod:`~slotalloc.service.operator_page`. Nothing is imported
here: ``import slotalloc.service`` never needs FastAPI.

Layers, each importing only those below it:

* HTTP (needs FastAPI): :mod:`~slotalloc.service.server` (the app and the
  server), :mod:`~slotalloc.service.routes`, :mod:`~slotalloc.service.writes`
  (the write path), :mod:`~slotalloc.service.schemas`,
  :mod:`~slotalloc.service.apidocs`, :mod:`~slotalloc.service.http` (limits and
  ASGI layers), :mod:`~slotalloc.service.logs`, the operator page
  (:mod:`~slotalloc.service.operator_page`, :mod:`~slotalloc.service.operator_view`);
* the durable allocator: :mod:`~slotalloc.service.commit` (group commit),
  :mod:`~slotalloc.service.durable`, :mod:`~slotalloc.service.journal`,
  :mod:`~slotalloc.service.replay`, :mod:`~slotalloc.service.rebalance`,
  :mod:`~slotalloc.service.compaction`, :mod:`~slotalloc.service.ownership`,
  :mod:`~slotalloc.service.ops`;
* the file: :mod:`~slotalloc.service.store`, :mod:`~slotalloc.service.files`,
  :mod:`~slotalloc.service.chain`, :mod:`~slotalloc.service.errors`;
* :mod:`~slotalloc.service.auth` (tokens) stands apart.

:mod:`~slotalloc.service.ledger` gathers the public names of the lower two.
"""
