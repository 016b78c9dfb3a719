# /// script
# requires-python = ">=3.9"
# dependencies = ["tabulate"]      # from PyPI, installed with pip into the env
# [tool.conda]
# dependencies = ["numpy"]         # from conda channels
# channels = ["conda-forge"]
# ///
"""A PEP 723 script: conda-execute reads the same block uv and pipx do, plus [tool.conda]."""
import numpy as np
from tabulate import tabulate

rows = [(n, float(np.sqrt(n))) for n in range(1, 5)]
print(tabulate(rows, headers=["n", "sqrt(n)"]))
