"""Documented instance generators (docs/generator.md): :mod:`~slotalloc.scenarios.xiamen`."""
