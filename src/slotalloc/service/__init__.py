"""The booking service: the durable ledger under the online engine, its HTTP API and operator page.

:mod:`~slotalloc.service.ledger` commits every accepted operation of
:class:`slotalloc.online.Allocator` to an append-only SQLite ledger;
:mod:`~slotalloc.service.server` puts an authenticated FastAPI app in front of
it (the ``server`` extra), with :mod:`~slotalloc.service.auth` and the
operator page of :mod:`~slotalloc.service.operator_page`. Nothing is imported
here: ``import slotalloc.service`` never needs FastAPI.
"""
