# Source this to run course commands outside make: the venv's Python and Intel MPI on the paths.
#   . tools/course_env.sh
# The same three variables the Makefile exports and the Jupyter kernel carries.
# A learner's own copy of the course without a .venv uses the installed course's environment when
# it is already set (the Jupyter kernel sets I_MPI_ROOT).
COURSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$COURSE_ROOT/.venv"
if [ ! -x "$VENV/bin/python" ] && [ -n "${I_MPI_ROOT:-}" ] && [ -x "$I_MPI_ROOT/bin/python" ]; then
    VENV="$I_MPI_ROOT"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "no course environment in $COURSE_ROOT/.venv: run 'make setup' (or 'make lab') there first" >&2
    return 1 2>/dev/null || exit 1
fi
export PATH="$VENV/bin:$PATH"
export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export I_MPI_ROOT="$VENV"
# OpenVINO's and NNCF's telemetry off (notebook 01): the telemetry package's own switches.
export CI=true
export NNCF_CI=1
