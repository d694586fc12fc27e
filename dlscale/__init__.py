"""dlscale: the helper package every notebook and script of the course imports.

    from dlscale import mpirun, check_exit, quick_mode, load_mnist

What runs inside a rank: rank (who am I, how many threads), cli (the scripts' options), data, cnn,
spmd (Horovod and daal4py start-up), onednn, native. What launches and summarizes ranks: launch,
experiments (the grids), elastic (a disturbed Elastic Horovod job), strategy (TF_CONFIG from MPI
ranks), results, plots, bench, tfbench, comms, doctor; exercises and grading for
the exercises. Importing it is cheap: TensorFlow, Horovod and daal4py are imported only by the
functions that need them.
"""

from .dlboost import keep_offline
from .env import quiet_tensorflow

quiet_tensorflow()  # before anything imports TensorFlow: its log level is read when it loads
keep_offline()  # before anything imports OpenVINO or NNCF: their telemetry stays off

from .cpu import cpu_facts, usable_cores  # noqa: E402
from .data import DataError, load_image, load_mnist, shard  # noqa: E402
from .env import ROOT, course_dir, quick_mode  # noqa: E402
from .grading import check  # noqa: E402
from .launch import MPIRunError, check_exit, mpirun  # noqa: E402
from .rank import rank_and_size, threads_per_rank  # noqa: E402

__all__ = [
    "ROOT", "DataError", "MPIRunError", "check", "check_exit", "course_dir", "cpu_facts", "load_image",
    "load_mnist", "mpirun", "quick_mode", "rank_and_size", "shard", "threads_per_rank", "usable_cores",
]
__version__ = "0.1.0"
