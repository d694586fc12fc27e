"""Grading an exercise: the check cell that follows each one in the notebooks."""

from __future__ import annotations


def check(answer, expected, *, what: str, hint: str = "") -> None:
    """The check cell after an exercise: a short 'Correct' or an AssertionError with a hint."""
    if answer == expected:
        print(f"Correct: {what}.")
        return
    raise AssertionError(f"Not yet: {what}. You gave {answer!r}." + (f" Hint: {hint}" if hint else ""))


def check_horovod_script(name: str) -> None:
    """Notebook 04's check: what each rank of the learner's Horovod script recorded, step by step.

    Reads results/NAME.json, whose per-rank lists the script gathered from every rank; raises at
    the first step that is not right, with a hint naming it.
    """
    from dlscale.results import read_results

    m = read_results(name)["measurements"]
    ranks = len(m["weights_digest_per_rank"])
    check(ranks > 1, True, what=f"step 1: Horovod joined the {ranks} MPI rank(s) into one job",
          hint="launch it with mpirun -n 2 and call hvd.init(): without it, every rank is a job of one")
    check(m["intra_op_threads_per_rank"], [m["threads_per_rank_planned"]] * ranks,
          what=f"step 2: each rank's TensorFlow runs {m['threads_per_rank_planned']} intra-op thread(s), "
               "its share of the cores",
          hint="0 means TensorFlow takes one thread per core in every rank, so the ranks fight for "
               "the cores; set the intra-op pool to `threads` (tf.config.threading)")
    if m["lr_scaled"]:
        check(round(m["learning_rate"] / m["base_learning_rate"], 9), ranks,
              what=f"step 3: the learning rate is {ranks} x --lr", hint="multiply args.lr by hvd.size()")
    check(m["distributed_optimizer_per_rank"], [True] * ranks,
          what="step 4: every rank's optimizer averages the gradients over all ranks",
          hint="wrap the Adam optimizer with hvd.DistributedOptimizer before the model is compiled")
    check(len(set(m["weights_digest_after_first_step_per_rank"])), 1,
          what="step 5: after the first step every rank holds rank 0's weights",
          hint="each rank started from its own random weights: add Horovod's broadcast callback "
               "(root rank 0) to the callbacks")
    check(m["weights_identical"], True, what="after training, every rank holds exactly the same weights",
          hint="steps 4 and 5 together keep the ranks identical")
    trained = m["epochs_done"] - m["resumed_from_epoch"]
    check(m["checkpoints_saved_per_rank"], [trained] + [0] * (ranks - 1),
          what=f"step 6: rank 0 saved a checkpoint after each of its {trained} epoch(s), the others none",
          hint="add `checkpoints` to the callbacks on rank 0 only (hvd.rank() == 0)")
    printed = [lines > 0 for lines in m["progress_lines_per_rank"]]
    check(printed, [True] + [False] * (ranks - 1), what="step 6: only rank 0 printed progress",
          hint="set verbose to hvd.rank() == 0")


def check_strategy_script(name: str) -> None:
    """Notebook 07's check: what each worker of the learner's MultiWorkerMirroredStrategy script recorded."""
    from dlscale.results import read_results

    m = read_results(name)["measurements"]
    ranks = len(m["weights_digest_per_rank"])
    check(m["workers"], ranks, what=f"step 2: the strategy joined all {ranks} workers that mpirun started",
          hint="create tf.distribute.MultiWorkerMirroredStrategy after TF_CONFIG is set (step 1 did it)")
    if m["lr_scaled"]:
        check(round(m["learning_rate"] / m["base_learning_rate"], 9), ranks,
              what=f"step 3: the learning rate is {ranks} x --lr",
              hint="multiply args.lr by strategy.num_replicas_in_sync")
    check(m["variables_mirrored_per_rank"], [True] * ranks,
          what="step 4: every worker's model variables are mirrored by the strategy",
          hint="build the model inside `with strategy.scope():`, so its variables are created there")
    check(m["weights_identical"], True, what="after training, every worker holds exactly the same weights",
          hint="variables created outside the scope are not kept in step")
