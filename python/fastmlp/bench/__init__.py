"""``python -m fastmlp bench``: fastmlp against its peers (the NumPy oracle, PyTorch eager,
scikit-learn's MLPClassifier, pure Python) on the same networks, starting weights and synthetic data.

Parts: the training cases (``_training``), the configuration matrix (``_matrix``), prediction
(``_predict``) and a busy CPU (``_busy``); every timed run follows a settle pause (``_timing``) and
every table names the machine (``_machine``). Deliberately no plotting, no history of past runs and
no assertion about speed; the developer-only probes (peak memory, GEMM kernels, A/B of builds) are
the scripts in the repository's ``bench/`` folder. torch, scikit-learn and threadpoolctl are
optional (``pip install fastmlp[bench]``) and imported only when a run needs them.
"""

from ._command import PARTS, configure_parser, main, run
from ._machine import blas_thread_limiter, usable_cores
from ._settings import FULL, QUICK, TINY, Settings
from ._training import CASES

__all__ = ["CASES", "FULL", "PARTS", "QUICK", "TINY", "Settings", "blas_thread_limiter", "configure_parser", "main",
           "run", "usable_cores"]
