"""Starting the two distributed engines of the course, with errors a learner can act on."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

from .env import ENVIRONMENT_FIX, MPIEnvironmentError, export_line


def _mpi_library_error(error: BaseException, engine: str) -> Exception:
    message = str(error)
    if "libmpi" in message or "transceiver" in message:
        return MPIEnvironmentError(
            f"{engine} could not load MPI's library (libmpi.so.12): {message}\n"
            "Fix: " + ENVIRONMENT_FIX.format(export=export_line())
        )
    return error if isinstance(error, Exception) else RuntimeError(message)


@contextlib.contextmanager
def daal4py_spmd(threads: int | None = None) -> Iterator[tuple[object, object]]:
    """`with daal4py_spmd(threads) as (d4p, comm):` runs daal4py in SPMD mode over the MPI ranks.

    daalinit() sets daal4py's threads for this rank (MPI starts with the first distributed call);
    daalfini() releases daal4py's communication, and finalizes MPI if daal4py started it, after
    the last distributed call: the context manager guarantees it. `comm` is mpi4py's COMM_WORLD on
    the same MPI, for what daal4py does not do (gathering labels to rank 0). An exception on any
    rank aborts the whole job at once (MPI_Abort), with that rank's traceback, rather than
    leaving the launcher to notice a rank that ended without finalizing MPI.
    """
    try:
        import daal4py as d4p
    except ImportError as error:
        raise _mpi_library_error(error, "daal4py") from error
    try:
        d4p.daalinit(threads or -1)  # -1: all the cores this rank may use
        d4p.num_procs()  # daal4py starts MPI at its first distributed call: make it now
    except Exception as error:
        raise _mpi_library_error(error, "daal4py") from error
    import mpi4py

    mpi4py.rc.initialize = mpi4py.rc.finalize = False  # daal4py owns MPI's start and end
    from mpi4py import MPI

    try:
        yield d4p, MPI.COMM_WORLD
    except BaseException:
        if MPI.COMM_WORLD.Get_size() > 1:
            traceback.print_exc()
            sys.stderr.flush()
            MPI.COMM_WORLD.Abort(1)
        raise
    d4p.daalfini()


def import_horovod():
    """horovod.tensorflow.keras, with a clear error when its MPI library cannot be loaded."""
    try:
        import horovod.tensorflow.keras as hvd
    except Exception as error:  # ImportError or horovod's own load errors
        raise _mpi_library_error(error, "Horovod") from error
    return hvd


def horovod_init():
    """import_horovod() and hvd.init(), for scripts that use Horovod without teaching it."""
    hvd = import_horovod()
    try:
        hvd.init()
    except Exception as error:
        raise _mpi_library_error(error, "Horovod") from error
    return hvd
