"""From the live service to the batch run and back: places held as bookings."""

from __future__ import annotations

from slotalloc.models import Booking, Instance, Solution

__all__ = ["held_as_bookings"]


def held_as_bookings(instance: Instance, solution: Solution, *, locked: bool = False) -> Instance:
    """The instance with a solution's assignments as its bookings, replacing its own.

    The deadline's batch run starts from the places the online service holds:
    fed to the optimiser, they are kept unless moving or dropping one serves
    more (the objective's ``move`` and ``drop`` weights price it), or never
    touched when ``locked``.

    Parameters
    ----------
    instance
        The instance the solution assigns (e.g. the online state export's).
    solution
        Its assignments become the bookings, in solution order.
    locked
        Mark every booking locked (FORMAT §2 rule 6).

    Returns
    -------
    Instance
        A new validated instance; the input is unchanged.

    Raises
    ------
    pydantic.ValidationError
        An assignment names a request or session the instance does not have.
    """
    data = instance.model_dump(mode="json")
    data["bookings"] = [
        Booking(request=a.request, session=a.session, locked=locked).model_dump(mode="json")
        for a in solution.assignments
    ]
    return Instance.model_validate(data)
