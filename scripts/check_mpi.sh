#!/usr/bin/env bash
# Runs the data-parallel tests (tests/mpi/test_distributed.py: mpirun -n 2 and -n 3 over loopback
# against single-process training) with the fastmlp importable from the current Python,
# installing what is missing first: OpenMPI (apt, when mpirun is absent and apt-get exists)
# and mpi4py (pip, into the current Python environment). CI calls it as root.
# Usage: scripts/check_mpi.sh [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

if ! command -v mpirun >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openmpi-bin libopenmpi-dev
    else
        echo "check_mpi.sh: no mpirun and no apt-get; install OpenMPI or MPICH first" >&2
        exit 1
    fi
fi
if ! "$python" -c "import mpi4py" >/dev/null 2>&1; then
    # Built against the MPI just installed (mpicc from libopenmpi-dev): the fastmlp[mpi] extra.
    "$python" -m pip install --quiet "mpi4py>=3.1"
fi

# Open MPI refuses to run as root without these (CI containers run as root), and its
# shared-memory transport cannot use CMA inside most containers.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
"$python" -c "import fastmlp, mpi4py; print('fastmlp', fastmlp.__version__, 'from', fastmlp.__file__, '| mpi4py', mpi4py.__version__)"
mpirun --version | head -1
cd "$root"
exec "$python" -m pytest -q -p no:cacheprovider tests/mpi/test_distributed.py -rs "$@"
