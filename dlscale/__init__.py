"""dlscale: the helper package every notebook and script of the course imports.

    from dlscale import mpirun, check_exit, quick_mode, load_mnist

Importing it is cheap: TensorFlow, Horovod and daal4py are imported only by the functions that
need them.
"""

from .checks import check
from .cpu import cpu_facts, usable_cores
from .data import DataError, load_image, load_mnist, shard
from .env import ROOT, quick_mode
from .launch import MPIRunError, check_exit, mpirun, rank_and_size, threads_per_rank

__all__ = [
    "ROOT", "DataError", "MPIRunError", "check", "check_exit", "cpu_facts", "load_image", "load_mnist",
    "mpirun", "quick_mode", "rank_and_size", "shard", "threads_per_rank", "usable_cores",
]
__version__ = "0.1.0"
