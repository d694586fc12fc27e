# Source this to run course commands outside make: the venv's Python and Intel MPI on the paths.
#   . tools/course_env.sh
# The same three variables the Makefile exports and the Jupyter kernel carries.
COURSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$COURSE_ROOT/.venv/bin/python" ]; then
    echo "no course environment in $COURSE_ROOT/.venv: run 'make setup' (or 'make lab') there first" >&2
    return 1 2>/dev/null || exit 1
fi
export PATH="$COURSE_ROOT/.venv/bin:$PATH"
export LD_LIBRARY_PATH="$COURSE_ROOT/.venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export I_MPI_ROOT="$COURSE_ROOT/.venv"
